// Real TLS client-auth handshakes on loopback with a token key: TLS 1.3 and 1.2, ECDSA and
// RSA (PSS in 1.3, PKCS#1 v1.5 forced in 1.2), with SSL_CTXs from the default library context
// (as libcurl makes them) and from the provider's own; then 2 threads × 500 handshakes.
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <thread>

#include "common/ossl_error.hpp"
#include "pkcs11/provider/provider.hpp"
#include "tests/pkcs11/token_env.hpp"
#include "tests/support/test_pki.hpp"
#include "tests/support/tls_loopback.hpp"

using namespace mtls;
using config::KeyType;

namespace {

struct Peer {
    std::shared_ptr<pkcs11::Token> token = test::open_test_token();
    std::shared_ptr<pkcs11::ProviderContext> prov =
        std::make_shared<pkcs11::ProviderContext>(token);
    test::TestCa ca = test::make_test_ca();
    ossl::PKey server_key = test::make_software_key("EC");
    ossl::X509Ptr server_cert =
        test::issue_cert(ca, server_key.get(), "localhost", test::CertUsage::server);
    pkcs11::KeyInfo info;
    ossl::PKey key;
    ossl::X509Ptr cert;

    explicit Peer(KeyType type) {
        info = token->generate_key(type, "tls-client");
        key = prov->load_private_key(info.id);
        cert = test::issue_cert(ca, key.get(), "tls-client", test::CertUsage::client);
    }
    ~Peer() {
        key.reset();
        token->destroy_key(info.id);
    }

    std::unique_ptr<test::TlsServer> server(int min_v, int max_v, const std::string& sigalgs = {}) {
        test::TlsServerOptions o;
        o.cert = server_cert.get();
        o.key = server_key.get();
        o.client_ca = ca.cert.get();
        o.min_version = min_v;
        o.max_version = max_v;
        o.client_sigalgs = sigalgs;
        return std::make_unique<test::TlsServer>(o);
    }

    // libctx nullptr: the default library context, as libcurl's SSL_CTX.
    ossl::SslCtx client_ctx(OSSL_LIB_CTX* libctx, int version) {
        ossl::SslCtx ctx(SSL_CTX_new_ex(libctx, nullptr, TLS_client_method()));
        if (!ctx) throw ossl::Error("SSL_CTX_new_ex");
        SSL_CTX_set_min_proto_version(ctx.get(), version);
        SSL_CTX_set_max_proto_version(ctx.get(), version);
        X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx.get()), ca.cert.get());
        SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
        if (SSL_CTX_use_certificate(ctx.get(), cert.get()) != 1 ||
            SSL_CTX_use_PrivateKey(ctx.get(), key.get()) != 1 ||
            SSL_CTX_check_private_key(ctx.get()) != 1)
            throw ossl::Error("client certificate/key");
        return ctx;
    }
};

struct Case {
    KeyType type;
    int version;
    bool provider_libctx;
    std::string sigalgs;  // server's CertificateRequest list (empty: OpenSSL default)
    int expect_sig_nid;
    std::string name;
};

void PrintTo(const Case& c, std::ostream* os) {
    *os << c.name;
}

class TlsHandshake : public ::testing::TestWithParam<Case> {};

TEST_P(TlsHandshake, ClientAuthWithTokenKey) {
    const Case& c = GetParam();
    Peer peer(c.type);
    auto server = peer.server(TLS1_2_VERSION, TLS1_3_VERSION, c.sigalgs);
    auto ctx = peer.client_ctx(c.provider_libctx ? peer.prov->libctx() : nullptr, c.version);
    for (int i = 0; i < 3; ++i) {
        const auto r = test::tls_connect(ctx.get(), server->port());
        ASSERT_TRUE(r.ok) << r.error;
        EXPECT_EQ(r.version, c.version);
    }
    const auto results = server->results();  // the client read the server's byte: recorded
    ASSERT_EQ(results.size(), 3u);
    for (const auto& s : results) {
        EXPECT_TRUE(s.ok) << s.error;
        EXPECT_EQ(s.version, c.version);
        EXPECT_EQ(s.peer_sig_nid, c.expect_sig_nid) << OBJ_nid2sn(s.peer_sig_nid);
        EXPECT_NE(s.peer_subject.find("CN=tls-client"), std::string::npos) << s.peer_subject;
    }
    EXPECT_EQ(peer.token->recoveries(), 0u);
}

const Case kCases[] = {
    {KeyType::ec_p256, TLS1_3_VERSION, false, "", EVP_PKEY_EC, "ec_p256_tls13_default_ctx"},
    {KeyType::ec_p256, TLS1_3_VERSION, true, "", EVP_PKEY_EC, "ec_p256_tls13_provider_ctx"},
    {KeyType::ec_p256, TLS1_2_VERSION, false, "", EVP_PKEY_EC, "ec_p256_tls12_default_ctx"},
    {KeyType::ec_p384, TLS1_3_VERSION, false, "", EVP_PKEY_EC, "ec_p384_tls13_default_ctx"},
    {KeyType::ec_p384, TLS1_2_VERSION, true, "", EVP_PKEY_EC, "ec_p384_tls12_provider_ctx"},
    {KeyType::rsa_2048, TLS1_3_VERSION, false, "", EVP_PKEY_RSA_PSS,
     "rsa_2048_tls13_pss_default_ctx"},
    {KeyType::rsa_2048, TLS1_3_VERSION, true, "", EVP_PKEY_RSA_PSS,
     "rsa_2048_tls13_pss_provider_ctx"},
    {KeyType::rsa_2048, TLS1_2_VERSION, false, "RSA+SHA256", EVP_PKEY_RSA,
     "rsa_2048_tls12_pkcs1_default_ctx"},
    {KeyType::rsa_2048, TLS1_2_VERSION, true, "RSA+SHA384", EVP_PKEY_RSA,
     "rsa_2048_tls12_pkcs1_provider_ctx"},
    {KeyType::rsa_2048, TLS1_2_VERSION, false, "", EVP_PKEY_RSA_PSS,
     "rsa_2048_tls12_pss_default_ctx"},
    {KeyType::rsa_3072, TLS1_3_VERSION, false, "", EVP_PKEY_RSA_PSS,
     "rsa_3072_tls13_pss_default_ctx"},
};

INSTANTIATE_TEST_SUITE_P(Matrix, TlsHandshake, ::testing::ValuesIn(kCases),
                         [](const auto& p) { return p.param.name; });

// One token key, two client threads, 500 handshakes each, against a server with two workers:
// no failures (sessions are never shared between threads; leaks show under the asan preset).
TEST(TlsParallel, TwoThreadsFiveHundredHandshakesEach) {
    Peer peer(KeyType::ec_p256);
    auto server = peer.server(TLS1_3_VERSION, TLS1_3_VERSION);
    auto ctx = peer.client_ctx(nullptr, TLS1_3_VERSION);
    constexpr int kPerThread = 500;
    std::atomic<int> ok{0};
    std::mutex mu;
    std::string first_error;
    auto worker = [&] {
        for (int i = 0; i < kPerThread; ++i) {
            const auto r = test::tls_connect(ctx.get(), server->port());
            if (r.ok) {
                ++ok;
            } else {
                std::lock_guard lk(mu);
                if (first_error.empty()) first_error = r.error;
            }
        }
    };
    std::thread a(worker), b(worker);
    a.join();
    b.join();
    EXPECT_EQ(ok.load(), 2 * kPerThread) << first_error;
    EXPECT_EQ(server->ok_count(), static_cast<std::size_t>(2 * kPerThread));
    EXPECT_EQ(server->failed_count(), 0u);
    EXPECT_EQ(peer.token->recoveries(), 0u);
}

}  // namespace
