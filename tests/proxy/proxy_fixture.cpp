#include "tests/proxy/proxy_fixture.hpp"

#include "common/encoding.hpp"
#include "common/ossl.hpp"
#include "common/ossl_error.hpp"

#include <openssl/pem.h>
#include <poll.h>

#include <fstream>
#include <sstream>
#include <stdexcept>

namespace mtls::proxytest {
namespace {

ossl::X509Ptr read_cert(const std::filesystem::path& p) {
    ossl::Bio b(BIO_new_file(p.c_str(), "r"));
    if (!b) throw ossl::Error("cannot open " + p.string());
    ossl::X509Ptr c(PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr));
    if (!c) throw ossl::Error("no certificate in " + p.string());
    return c;
}

ossl::PKey read_key(const std::filesystem::path& p) {
    ossl::Bio b(BIO_new_file(p.c_str(), "r"));
    if (!b) throw ossl::Error("cannot open " + p.string());
    ossl::PKey k(PEM_read_bio_PrivateKey(b.get(), nullptr, nullptr, nullptr));
    if (!k) throw ossl::Error("no key in " + p.string());
    return k;
}

void add_ext(X509* cert, X509* issuer, int nid, const char* value) {
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
    ossl::X509ExtPtr ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value));
    if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) throw ossl::Error("extension");
}

}  // namespace

identity::IdentityPtr issue_identity(const std::filesystem::path& ca_dir, const std::string& cn,
                                     std::uint64_t generation) {
    auto ca_cert = read_cert(ca_dir / "issuing-ca.pem");
    auto ca_key = read_key(ca_dir / "issuing-ca.key");
    ossl::PKey key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
    if (!key) throw ossl::Error("keygen");
    ossl::X509Ptr cert(X509_new());
    X509_set_version(cert.get(), X509_VERSION_3);
    static std::atomic<long> serial{1000};
    ASN1_INTEGER_set(X509_get_serialNumber(cert.get()),
                     serial++ + (std::time(nullptr) % 100000) * 1000);
    X509_gmtime_adj(X509_getm_notBefore(cert.get()), -60);
    X509_gmtime_adj(X509_getm_notAfter(cert.get()), 3600);
    ossl::X509NamePtr name(X509_NAME_new());
    X509_NAME_add_entry_by_txt(name.get(), "CN", MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
    X509_set_subject_name(cert.get(), name.get());
    X509_set_issuer_name(cert.get(), X509_get_subject_name(ca_cert.get()));
    X509_set_pubkey(cert.get(), key.get());
    add_ext(cert.get(), ca_cert.get(), NID_basic_constraints, "critical,CA:FALSE");
    add_ext(cert.get(), ca_cert.get(), NID_key_usage, "critical,digitalSignature");
    add_ext(cert.get(), ca_cert.get(), NID_ext_key_usage, "clientAuth");
    add_ext(cert.get(), ca_cert.get(), NID_authority_key_identifier, "keyid:always");
    if (X509_sign(cert.get(), ca_key.get(), EVP_sha256()) <= 0) throw ossl::Error("sign");
    std::vector<ossl::X509Ptr> chain;
    chain.push_back(std::move(ca_cert));
    return identity::Identity::create(std::move(cert), std::move(chain), std::move(key), "",
                                      generation);
}

std::string spki_pin_of(const std::filesystem::path& cert_pem) {
    auto cert = read_cert(cert_pem);
    unsigned char* der = nullptr;
    int len = i2d_PUBKEY(X509_get0_pubkey(cert.get()), &der);
    std::string spki(reinterpret_cast<char*>(der), static_cast<size_t>(len));
    OPENSSL_free(der);
    return encoding::base64(encoding::sha256(spki));
}

long proc_status_kib(const char* field) {
    std::ifstream f("/proc/self/status");
    std::string line;
    std::string want = std::string(field) + ":";
    while (std::getline(f, line))
        if (line.rfind(want, 0) == 0) return std::stol(line.substr(want.size()));
    return -1;
}

net::awaitable<token::TokenResult> CountingTokens::get(const std::string&,
                                                       identity::IdentityPtr id) {
    int n = ++gets;
    {
        std::lock_guard lk(mu_);  // the proxy's workers call from their threads
        last_thumbprint_ = id->x5t_s256();
    }
    if (fail) co_return token::TokenError{"as_unreachable", "the test AS is down"};
    co_return token::Token{"test-token-" + std::to_string(n)};
}

void CountingTokens::invalidate(const std::string&, const std::string&) {
    ++invalidations;
}

ProxyRunner::ProxyRunner(config::Listener listener, std::vector<config::Route> routes,
                         identity::IdentityStore& ids, token::TokenSource* tokens) {
    proxy_ = std::make_unique<proxy::Proxy>(io_, listener, routes, ids, tokens);
    proxy_->start();
    auto eps = proxy_->tcp_endpoints();
    if (!eps.empty()) port_ = eps.front().port();
    thread_ = std::thread([this] { io_.run(); });
}

void ProxyRunner::on_io(const std::function<void(proxy::Proxy&)>& f) {
    std::promise<void> done;
    net::asio::post(io_, [&] {
        f(*proxy_);
        done.set_value();
    });
    done.get_future().wait();
}

ProxyRunner::~ProxyRunner() {
    std::promise<void> stopped;
    net::asio::post(io_, [&] {
        proxy_->stop();
        stopped.set_value();
    });
    stopped.get_future().wait();
    io_.stop();
    thread_.join();
    proxy_.reset();
}

Client::Client(std::uint16_t port) {
    tcp_.connect({net::asio::ip::make_address("127.0.0.1"), port});
}

Client::Client(const std::string& unix_path) : is_unix_(true) {
    unix_.connect(net::unix_socket::endpoint(unix_path));
}

http::response<http::string_body> Client::request(
    http::verb method, const std::string& target, const std::string& body,
    std::vector<std::pair<std::string, std::string>> headers) {
    http::request<http::string_body> req{method, target, 11};
    req.set(http::field::host, "localhost");
    for (auto& [k, v] : headers) req.set(k, v);
    req.body() = body;
    if (!body.empty() || method == http::verb::post || method == http::verb::put)
        req.prepare_payload();
    with_stream([&](auto& s) {
        http::write(s, req);
        return 0;
    });
    return read_response(method == http::verb::head);
}

void Client::send_raw(const std::string& bytes) {
    with_stream([&](auto& s) {
        net::asio::write(s, net::asio::buffer(bytes));
        return 0;
    });
}

http::response<http::string_body> Client::read_response(bool head_only) {
    http::response_parser<http::string_body> p;
    p.body_limit(1u << 30);
    if (head_only) p.skip(true);
    with_stream([&](auto& s) {
        http::read(s, buf_, p);
        return 0;
    });
    return p.release();
}

http::response<http::string_body> Client::raw(const std::string& bytes, bool head_only) {
    send_raw(bytes);
    return read_response(head_only);
}

bool Client::closed_by_peer() {
    // Poll with a deadline for EOF (or reset).
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    return with_stream([&](auto& s) {
        s.non_blocking(true);
        char c[256];
        while (std::chrono::steady_clock::now() < deadline) {
            net::error_code ec;
            s.read_some(net::asio::buffer(c), ec);
            if (ec == net::asio::error::would_block) {
                ::poll(nullptr, 0, 10);
                continue;
            }
            if (ec) return true;
        }
        return false;
    });
}

}  // namespace mtls::proxytest
