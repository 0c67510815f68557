#include "tests/sandbox/ca.hpp"

#include "common/atomic_file.hpp"
#include "common/ossl_error.hpp"
#include "tests/sandbox/pem.hpp"

#include <openssl/rand.h>

#include <stdexcept>

namespace mtls::sandbox {
namespace {

namespace fs = std::filesystem;

void set_random_serial(X509* cert) {
    unsigned char bytes[16];
    if (RAND_bytes(bytes, sizeof bytes) != 1) throw ossl::Error("RAND_bytes failed");
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;  // positive, 16 bytes
    ossl::BigNum bn(BN_bin2bn(bytes, sizeof bytes, nullptr));
    if (!bn || !BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert)))
        throw ossl::Error("cannot set serial number");
}

void add_ext(X509* cert, X509* issuer, int nid, const char* value) {
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
    ossl::X509ExtPtr ext(X509V3_EXT_nconf_nid(nullptr, &ctx, nid, value));
    if (!ext || X509_add_ext(cert, ext.get(), -1) != 1)
        throw ossl::Error(std::string("cannot add extension ") + OBJ_nid2sn(nid));
}

ossl::X509NamePtr make_name(const std::string& cn) {
    ossl::X509NamePtr n(X509_NAME_new());
    auto add = [&](const char* f, const std::string& v) {
        if (!X509_NAME_add_entry_by_txt(n.get(), f, MBSTRING_UTF8,
                                        reinterpret_cast<const unsigned char*>(v.c_str()), -1, -1,
                                        0))
            throw ossl::Error("cannot build name");
    };
    add("O", "mtls-agent sandbox");
    add("CN", cn);
    return n;
}

// Builds and signs a certificate. `issuer` null = self-signed with `sign_key`.
ossl::X509Ptr build(EVP_PKEY* pub, const X509_NAME* subject, X509* issuer, EVP_PKEY* sign_key,
                    std::chrono::seconds validity,
                    std::chrono::seconds not_before_offset = std::chrono::seconds(0)) {
    ossl::X509Ptr c(X509_new());
    if (!c || X509_set_version(c.get(), X509_VERSION_3) != 1) throw ossl::Error("X509_new");
    set_random_serial(c.get());
    if (X509_set_subject_name(c.get(), subject) != 1 ||
        X509_set_issuer_name(c.get(), issuer ? X509_get_subject_name(issuer) : subject) != 1 ||
        X509_set_pubkey(c.get(), pub) != 1)
        throw ossl::Error("cannot fill certificate");
    const long from = static_cast<long>(not_before_offset.count());
    if (!X509_gmtime_adj(X509_getm_notBefore(c.get()), from) ||
        !X509_gmtime_adj(X509_getm_notAfter(c.get()), from + static_cast<long>(validity.count())))
        throw ossl::Error("cannot set validity");
    (void)sign_key;
    return c;
}

// AIA OCSP and CRL DP of a certificate the issuing CA makes (none when the URL is empty).
void add_revocation_exts(X509* cert, X509* issuer, const std::string& ocsp,
                         const std::string& crl) {
    if (!ocsp.empty()) add_ext(cert, issuer, NID_info_access, ("OCSP;URI:" + ocsp).c_str());
    if (!crl.empty()) add_ext(cert, issuer, NID_crl_distribution_points, ("URI:" + crl).c_str());
}

void sign(X509* c, EVP_PKEY* key) {
    if (X509_sign(c, key, EVP_sha256()) <= 0) throw ossl::Error("X509_sign failed");
}

void write_pair(const fs::path& dir, const std::string& stem, X509* cert, EVP_PKEY* key) {
    files::write_atomic(dir / (stem + ".key"), key_to_pem(key), 0600);
    files::write_atomic(dir / (stem + ".pem"), cert_to_pem(cert), 0644);
}

}  // namespace

DevCa DevCa::open(const fs::path& dir, const RevocationUrls& urls, const std::string& name) {
    files::ensure_dir(dir, 0700);
    DevCa ca;
    ca.urls_ = urls;
    ca.files_ = {dir / "root-ca.pem", dir / "issuing-ca.pem", dir / "ca-bundle.pem",
                 dir / "server.pem", dir / "server.key"};
    const auto root_key = dir / "root-ca.key", issuing_key = dir / "issuing-ca.key";
    bool have = fs::exists(ca.files_.root) && fs::exists(root_key) &&
                fs::exists(ca.files_.issuing) && fs::exists(issuing_key);
    if (have) {
        ca.root_ = std::move(certs_from_file(ca.files_.root).front());
        ca.issuing_ = std::move(certs_from_file(ca.files_.issuing).front());
        ca.root_key_ = key_from_file(root_key);
        ca.issuing_key_ = key_from_file(issuing_key);
        if (X509_check_private_key(ca.issuing_.get(), ca.issuing_key_.get()) != 1)
            throw ossl::Error("issuing CA key does not match issuing-ca.pem in " + dir.string());
    } else {
        using namespace std::chrono_literals;
        ca.root_key_ = new_p256_key();
        auto rn = make_name(name + " root CA");
        ca.root_ = build(ca.root_key_.get(), rn.get(), nullptr, ca.root_key_.get(),
                         std::chrono::hours(24 * 3650));
        add_ext(ca.root_.get(), ca.root_.get(), NID_basic_constraints, "critical,CA:TRUE");
        add_ext(ca.root_.get(), ca.root_.get(), NID_key_usage, "critical,keyCertSign,cRLSign");
        add_ext(ca.root_.get(), ca.root_.get(), NID_subject_key_identifier, "hash");
        sign(ca.root_.get(), ca.root_key_.get());

        ca.issuing_key_ = new_p256_key();
        auto in = make_name(name + " issuing CA");
        ca.issuing_ = build(ca.issuing_key_.get(), in.get(), ca.root_.get(), ca.root_key_.get(),
                            std::chrono::hours(24 * 1825));
        add_ext(ca.issuing_.get(), ca.root_.get(), NID_basic_constraints,
                "critical,CA:TRUE,pathlen:0");
        add_ext(ca.issuing_.get(), ca.root_.get(), NID_key_usage, "critical,keyCertSign,cRLSign");
        add_ext(ca.issuing_.get(), ca.root_.get(), NID_subject_key_identifier, "hash");
        add_ext(ca.issuing_.get(), ca.root_.get(), NID_authority_key_identifier, "keyid:always");
        add_revocation_exts(ca.issuing_.get(), ca.root_.get(), "", urls.root_crl);
        sign(ca.issuing_.get(), ca.root_key_.get());

        write_pair(dir, "root-ca", ca.root_.get(), ca.root_key_.get());
        write_pair(dir, "issuing-ca", ca.issuing_.get(), ca.issuing_key_.get());
        ca.created_ = true;
    }
    files::write_atomic(ca.files_.bundle,
                        cert_to_pem(ca.issuing_.get()) + cert_to_pem(ca.root_.get()), 0644);
    return ca;
}

ossl::X509Ptr DevCa::issue(EVP_PKEY* pub, const X509_NAME* subject, const GENERAL_NAMES* sans,
                           std::chrono::seconds validity, Usage usage,
                           std::chrono::seconds not_before_offset) const {
    auto c = build(pub, subject, issuing_.get(), issuing_key_.get(), validity, not_before_offset);
    X509* ci = c.get();
    add_ext(ci, issuing_.get(), NID_basic_constraints, "critical,CA:FALSE");
    add_ext(ci, issuing_.get(), NID_key_usage,
            usage == Usage::server ? "critical,digitalSignature,keyEncipherment"
                                   : "critical,digitalSignature");
    add_ext(ci, issuing_.get(), NID_ext_key_usage,
            usage == Usage::server ? "serverAuth" : "clientAuth");
    add_ext(ci, issuing_.get(), NID_subject_key_identifier, "hash");
    add_ext(ci, issuing_.get(), NID_authority_key_identifier, "keyid:always");
    if (sans && sk_GENERAL_NAME_num(sans) > 0) {
        if (X509_add1_ext_i2d(ci, NID_subject_alt_name, const_cast<GENERAL_NAMES*>(sans), 0,
                              X509V3_ADD_DEFAULT) != 1)
            throw ossl::Error("cannot add subjectAltName");
    }
    add_revocation_exts(ci, issuing_.get(), urls_.ocsp, urls_.issuing_crl);
    sign(ci, issuing_key_.get());
    if (on_issue) on_issue(ci);
    return c;
}

void DevCa::make_server_identity(ossl::PKey& key, std::vector<ossl::X509Ptr>& chain) const {
    key = new_p256_key();
    auto subject = make_name("localhost");
    auto c = build(key.get(), subject.get(), issuing_.get(), issuing_key_.get(),
                   std::chrono::hours(24 * 30));
    X509* ci = c.get();
    add_ext(ci, issuing_.get(), NID_basic_constraints, "critical,CA:FALSE");
    add_ext(ci, issuing_.get(), NID_key_usage, "critical,digitalSignature");
    add_ext(ci, issuing_.get(), NID_ext_key_usage, "serverAuth");
    add_ext(ci, issuing_.get(), NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1,IP:::1");
    add_ext(ci, issuing_.get(), NID_subject_key_identifier, "hash");
    add_ext(ci, issuing_.get(), NID_authority_key_identifier, "keyid:always");
    add_revocation_exts(ci, issuing_.get(), urls_.ocsp, urls_.issuing_crl);
    sign(ci, issuing_key_.get());
    if (on_issue) on_issue(ci);
    files::write_atomic(files_.server_key, key_to_pem(key.get()), 0600);
    files::write_atomic(files_.server_cert, cert_to_pem(ci) + cert_to_pem(issuing_.get()), 0644);
    chain.clear();
    chain.push_back(std::move(c));
    X509_up_ref(issuing_.get());
    chain.emplace_back(issuing_.get());
}

void DevCa::make_ocsp_signer(ossl::PKey& key, ossl::X509Ptr& cert) const {
    key = new_p256_key();
    auto subject = make_name("mtls-agent sandbox OCSP responder");
    cert = build(key.get(), subject.get(), issuing_.get(), issuing_key_.get(),
                 std::chrono::hours(24 * 30));
    X509* ci = cert.get();
    add_ext(ci, issuing_.get(), NID_basic_constraints, "critical,CA:FALSE");
    add_ext(ci, issuing_.get(), NID_key_usage, "critical,digitalSignature");
    add_ext(ci, issuing_.get(), NID_ext_key_usage, "OCSPSigning");
    add_ext(ci, issuing_.get(), NID_id_pkix_OCSP_noCheck, "ignored");
    add_ext(ci, issuing_.get(), NID_subject_key_identifier, "hash");
    add_ext(ci, issuing_.get(), NID_authority_key_identifier, "keyid:always");
    sign(ci, issuing_key_.get());
    write_pair(files_.root.parent_path(), "ocsp-signer", ci, key.get());
}

void DevCa::sign_crl(X509_CRL* crl, bool by_root) const {
    X509* issuer = by_root ? root_.get() : issuing_.get();
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, issuer, nullptr, nullptr, crl, 0);
    ossl::X509ExtPtr aki(
        X509V3_EXT_nconf_nid(nullptr, &ctx, NID_authority_key_identifier, "keyid:always"));
    if (!aki || X509_CRL_add_ext(crl, aki.get(), -1) != 1)
        throw ossl::Error("cannot add the CRL's authority key identifier");
    if (X509_CRL_sign(crl, by_root ? root_key_.get() : issuing_key_.get(), EVP_sha256()) <= 0)
        throw ossl::Error("X509_CRL_sign failed");
}

ossl::X509StorePtr DevCa::root_store() const {
    ossl::X509StorePtr s(X509_STORE_new());
    if (!s || X509_STORE_add_cert(s.get(), root_.get()) != 1)
        throw ossl::Error("cannot build CA store");
    return s;
}

bool DevCa::verify(X509* leaf, STACK_OF(X509) * untrusted, std::string& why) const {
    auto store = root_store();
    return verify_against(store.get(), leaf, untrusted, why);
}

bool verify_against(X509_STORE* store, X509* leaf, STACK_OF(X509) * untrusted, std::string& why) {
    ossl::X509StoreCtxPtr ctx(X509_STORE_CTX_new());
    if (!ctx || X509_STORE_CTX_init(ctx.get(), store, leaf, untrusted) != 1) {
        why = ossl::drain_errors();
        return false;
    }
    X509_STORE_CTX_set_purpose(ctx.get(), X509_PURPOSE_SSL_CLIENT);
    if (X509_verify_cert(ctx.get()) == 1) return true;
    why = X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx.get()));
    ossl::drain_errors();
    return false;
}

}  // namespace mtls::sandbox
