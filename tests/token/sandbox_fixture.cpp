#include "tests/token/sandbox_fixture.hpp"

#include "common/ossl.hpp"
#include "common/ossl_error.hpp"

#include <openssl/pem.h>
#include <openssl/rand.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>

namespace mtls::token::testing {
namespace fs = std::filesystem;

std::string make_temp_dir() {
    std::string tmpl = (fs::temp_directory_path() / "mtls-token-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    return tmpl;
}

std::string Sandbox::binary() {
    if (const char* e = std::getenv("MTLS_PARTNER_SANDBOX"); e && *e) return e;
    return test::SandboxProcess::default_binary().string();
}

namespace {

http::Options admin_options(const std::string& bundle) {
    http::Options o;
    o.trust = http::ServerTrust::from_ca_file(bundle);
    o.timeout = std::chrono::seconds(10);
    return o;
}

}  // namespace

Sandbox::Sandbox(const std::string& dir, const std::vector<std::string>& extra)
    : process_(
          std::make_unique<test::SandboxProcess>(dir, extra, std::chrono::seconds(30), binary())),
      info_(process_->info()) {}

nlohmann::json Sandbox::stats() const {
    http::Request r;
    r.url = info_["admin"]["stats"];
    auto resp = http::fetch(admin_options(ca_bundle()), r);
    if (resp.status != 200)
        throw std::runtime_error("GET /sandbox/stats: HTTP " + std::to_string(resp.status));
    return nlohmann::json::parse(resp.body);
}

std::uint64_t Sandbox::token_requests() const {
    auto s = stats();
    // Counters may be flat or grouped per service; find token_requests anywhere.
    if (s.contains("token_requests")) return s["token_requests"].get<std::uint64_t>();
    for (auto& [k, v] : s.items())
        if (v.is_object() && v.contains("token_requests"))
            return v["token_requests"].get<std::uint64_t>();
    throw std::runtime_error("no token_requests in /sandbox/stats: " + s.dump());
}

void Sandbox::set_mode(const std::string& query) const {
    http::Request r;
    r.method = "POST";
    r.url = std::string(info_["admin"]["mode"]) + "?" + query;
    r.body.clear();
    auto resp = http::fetch(admin_options(ca_bundle()), r);
    if (resp.status != 200)
        throw std::runtime_error("POST /sandbox/mode?" + query + ": HTTP " +
                                 std::to_string(resp.status) + " " + resp.body_excerpt());
}

void Sandbox::reset_stats() const {
    http::Request r;
    r.method = "POST";
    r.url = std::string(info_["admin"]["stats"]) + "/reset";
    r.body.clear();
    auto resp = http::fetch(admin_options(ca_bundle()), r);
    if (resp.status != 200)
        throw std::runtime_error("POST /sandbox/stats/reset: HTTP " + std::to_string(resp.status));
}

http::Response Sandbox::call_api(const identity::Identity& id, const std::string& token) const {
    auto o = admin_options(ca_bundle());
    std::vector<X509*> chain;
    for (auto& c : id.chain()) chain.push_back(c.get());
    o.identity = http::ClientIdentity::make(id.leaf(), chain, id.key());
    http::Request r;
    r.url = api_data_url();
    r.headers = {{"Authorization", "Bearer " + token}};
    return http::fetch(std::move(o), r);
}

namespace {

ossl::X509Ptr read_cert(const std::string& path) {
    ossl::Bio b(BIO_new_file(path.c_str(), "r"));
    if (!b) throw ossl::Error("cannot open " + path);
    ossl::X509Ptr c(PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr));
    if (!c) throw ossl::Error("no certificate in " + path);
    return c;
}

ossl::PKey read_key(const std::string& path) {
    ossl::Bio b(BIO_new_file(path.c_str(), "r"));
    if (!b) throw ossl::Error("cannot open " + path);
    ossl::PKey k(PEM_read_bio_PrivateKey(b.get(), nullptr, nullptr, nullptr));
    if (!k) throw ossl::Error("no key in " + path);
    return k;
}

void add_ext(X509* cert, X509* issuer, int nid, const char* value) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
    ossl::X509ExtPtr ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value));
    if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) throw ossl::Error("X509_add_ext failed");
}

}  // namespace

identity::IdentityPtr make_identity(const std::string& ca_dir, const std::string& cn,
                                    std::uint64_t generation) {
    ossl::PKey key(EVP_EC_gen("P-256"));
    if (!key) throw ossl::Error("EVP_EC_gen failed");
    ossl::X509Ptr cert(X509_new());
    X509_set_version(cert.get(), 2);
    unsigned char serial[16];
    RAND_bytes(serial, sizeof serial);
    serial[0] &= 0x7f;
    ossl::BigNum bn(BN_bin2bn(serial, sizeof serial, nullptr));
    BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert.get()));
    X509_NAME* name = X509_get_subject_name(cert.get());
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
    X509_gmtime_adj(X509_getm_notBefore(cert.get()), -60);
    X509_gmtime_adj(X509_getm_notAfter(cert.get()), 86400);
    X509_set_pubkey(cert.get(), key.get());
    std::vector<ossl::X509Ptr> chain;
    if (ca_dir.empty()) {
        X509_set_issuer_name(cert.get(), name);
        add_ext(cert.get(), cert.get(), NID_basic_constraints, "critical,CA:FALSE");
        add_ext(cert.get(), cert.get(), NID_key_usage, "critical,digitalSignature");
        add_ext(cert.get(), cert.get(), NID_ext_key_usage, "clientAuth");
        if (X509_sign(cert.get(), key.get(), EVP_sha256()) <= 0) throw ossl::Error("X509_sign");
    } else {
        auto ca = read_cert(ca_dir + "/issuing-ca.pem");
        auto ca_key = read_key(ca_dir + "/issuing-ca.key");
        X509_set_issuer_name(cert.get(), X509_get_subject_name(ca.get()));
        add_ext(cert.get(), ca.get(), NID_basic_constraints, "critical,CA:FALSE");
        add_ext(cert.get(), ca.get(), NID_key_usage, "critical,digitalSignature");
        add_ext(cert.get(), ca.get(), NID_ext_key_usage, "clientAuth");
        add_ext(cert.get(), ca.get(), NID_authority_key_identifier, "keyid");
        if (X509_sign(cert.get(), ca_key.get(), EVP_sha256()) <= 0) throw ossl::Error("X509_sign");
        chain.push_back(std::move(ca));
    }
    return identity::Identity::create(std::move(cert), std::move(chain), std::move(key), {},
                                      generation);
}

std::string cert_pem(const identity::Identity& id) {
    ossl::Bio b(BIO_new(BIO_s_mem()));
    PEM_write_bio_X509(b.get(), id.leaf());
    char* data = nullptr;
    long n = BIO_get_mem_data(b.get(), &data);
    return std::string(data, static_cast<size_t>(n));
}

}  // namespace mtls::token::testing
