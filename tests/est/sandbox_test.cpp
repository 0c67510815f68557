// The EST client against the partner sandbox's EST server over real TLS on loopback:
// cacerts with a CA file and with a pinned fingerprint, enroll with Basic and with a
// bootstrap certificate, re-enroll, CA label, 202 retries, proof-of-possession linking,
// and the error paths (wrong CA, wrong pin, 401, 500, oversized response).
#include <gtest/gtest.h>
#include <openssl/pem.h>

#include <chrono>
#include <stop_token>
#include <thread>

#include "common/atomic_file.hpp"
#include "common/encoding.hpp"
#include "est/channel_binding.hpp"
#include "est/client.hpp"
#include "tests/est/sandbox_child.hpp"
#include "tests/est/test_pki.hpp"

namespace mtls::est {
namespace {

using namespace std::chrono_literals;
using testing::SandboxChild;

std::vector<ossl::X509Ptr> load_pem(const std::string& path) {
    std::vector<ossl::X509Ptr> out;
    ossl::Bio bio(BIO_new_file(path.c_str(), "r"));
    while (X509* x = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) out.emplace_back(x);
    return out;
}

std::string pem(X509* x) {
    ossl::Bio bio(BIO_new(BIO_s_mem()));
    PEM_write_bio_X509(bio.get(), x);
    char* d = nullptr;
    long n = BIO_get_mem_data(bio.get(), &d);
    return std::string(d, static_cast<size_t>(n));
}

std::vector<X509*> raw(const std::vector<ossl::X509Ptr>& v) {
    std::vector<X509*> out;
    for (auto& c : v) out.push_back(c.get());
    return out;
}

std::string serial_of(X509* x) {
    ossl::BigNum bn(ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), nullptr));
    char* hex = BN_bn2hex(bn.get());
    std::string s(hex);
    OPENSSL_free(hex);
    return s;
}

std::string cn_of(X509* x) {
    char cn[256] = {};
    X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof cn);
    return cn;
}

template <class F>
Error expect_est_error(F&& f) {
    try {
        f();
    } catch (const Error& e) {
        return e;
    }
    ADD_FAILURE() << "no est::Error thrown";
    return Error(Error::Kind::config, "none");
}

class EstSandbox : public ::testing::Test {
  protected:
    void start(std::vector<std::string> flags = {}) {
        sandbox = std::make_unique<SandboxChild>(std::move(flags));
        ca_certs = load_pem(sandbox->info()["ca"]["bundle"]);
        ASSERT_FALSE(ca_certs.empty());
        basic = load_basic_credentials(sandbox->credentials_file());
    }
    Settings settings(const std::string& label = {}) {
        Settings s;
        s.server_url = sandbox->est_base();
        s.ca_label = label;
        s.trust = http::ServerTrust::from_ca_file(sandbox->root_ca_file());
        s.timeout = 10s;
        s.retry_after_cap = 1s;
        return s;
    }
    CsrRequest names() {
        CsrRequest r;
        r.common_name = "host-17.example";
        r.organization = "Example Corp";
        r.dns_names = {"host-17.example"};
        return r;
    }
    Credentials basic_creds() { return Credentials{&basic, nullptr}; }

    std::unique_ptr<SandboxChild> sandbox;
    std::vector<ossl::X509Ptr> ca_certs;
    http::BasicAuth basic;
};

TEST_F(EstSandbox, CacertsWithCaFile) {
    start();
    Client c(settings());
    auto certs = c.cacerts();
    ASSERT_EQ(certs.size(), 2u);
    auto root = load_pem(sandbox->root_ca_file());
    ASSERT_EQ(root.size(), 1u);
    bool has_root = false;
    for (auto& x : certs) has_root = has_root || X509_cmp(x.get(), root[0].get()) == 0;
    EXPECT_TRUE(has_root);
}

TEST_F(EstSandbox, PinnedFingerprintBootstrap) {
    start();
    // The sandbox presents its server certificate and the issuing CA (not the root).
    auto issuing = load_pem(sandbox->info()["ca"]["issuing"]);
    auto server = load_pem(sandbox->server_cert_file());
    ASSERT_FALSE(issuing.empty());
    ASSERT_FALSE(server.empty());
    for (X509* pinned : {issuing[0].get(), server[0].get()}) {
        Settings s = settings();
        s.trust = http::ServerTrust::from_pin(encoding::sha256(testing::der(pinned)));
        Client c(s);
        auto certs = c.cacerts();
        EXPECT_EQ(certs.size(), 2u);
        // What first contact returns becomes the trust anchor of the next connection.
        s.trust = http::ServerTrust::from_certs(raw(certs));
        EXPECT_EQ(Client(s).cacerts().size(), 2u);
    }
    // A pin that matches nothing the server presents: here, the root it does not send.
    auto root = load_pem(sandbox->root_ca_file());
    Settings s = settings();
    s.trust = http::ServerTrust::from_pin(encoding::sha256(testing::der(root[0].get())));
    Client c(s);
    auto e = expect_est_error([&] { c.cacerts(); });
    EXPECT_EQ(e.kind(), Error::Kind::untrusted_server);
    EXPECT_NE(std::string(e.what()).find("pinned SHA-256"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("est.pinned_sha256"), std::string::npos) << e.what();

    // CA certificates and a pin together (the agent after a pinned first contact): the CA
    // certificates suffice; a chain they do not cover still passes on the pin; neither
    // gives one error naming both and est.trust_anchor.
    auto server_pin = encoding::sha256(testing::der(server[0].get()));
    auto stranger = testing::make_ca("Some Other CA");
    s.trust = http::ServerTrust::from_certs({root[0].get()});
    s.trust.pinned_sha256 = encoding::sha256(testing::der(stranger.cert.get()));
    EXPECT_EQ(Client(s).cacerts().size(), 2u) << "the CA certificates cover the chain";
    s.trust = http::ServerTrust::from_certs({stranger.cert.get()});
    s.trust.pinned_sha256 = server_pin;
    EXPECT_EQ(Client(s).cacerts().size(), 2u) << "the pin covers the chain";
    s.trust.pinned_sha256 = encoding::sha256(testing::der(root[0].get()));
    Client neither(s);
    auto both = expect_est_error([&] { neither.cacerts(); });
    const std::string why = both.what();
    EXPECT_NE(why.find("the stored CA certificates"), std::string::npos) << why;
    EXPECT_NE(why.find("pinned SHA-256"), std::string::npos) << why;
    EXPECT_NE(why.find("set est.trust_anchor to that CA"), std::string::npos) << why;
}

TEST_F(EstSandbox, WrongTlsCaIsRejected) {
    start();
    auto stranger = testing::make_ca("Some Other CA");
    auto path = sandbox->dir() / "other-ca.pem";
    files::write_atomic(path, pem(stranger.cert.get()), 0644);
    Settings s = settings();
    s.trust = http::ServerTrust::from_ca_file(path.string());
    Client c(s);
    auto e = expect_est_error([&] { c.cacerts(); });
    EXPECT_EQ(e.kind(), Error::Kind::untrusted_server);
    EXPECT_NE(std::string(e.what()).find("unable to get local issuer certificate"),
              std::string::npos)
        << e.what();
}

TEST_F(EstSandbox, EnrollWithBasicAuth) {
    start();
    Client c(settings());
    auto key = testing::ec_key("P-256");
    auto r = c.simpleenroll(names(), key.get(), basic_creds(), raw(ca_certs));
    ASSERT_TRUE(r.issued.cert);
    EXPECT_EQ(EVP_PKEY_eq(X509_get0_pubkey(r.issued.cert.get()), key.get()), 1);
    EXPECT_EQ(cn_of(r.issued.cert.get()), "host-17.example");
    EXPECT_FALSE(r.pop_linked);
    EXPECT_EQ(r.attempts, 1);
    // The sandbox's default csrattrs: ecdsa-with-SHA256 and an EC P-256 key.
    EXPECT_EQ(r.attributes.digest, "SHA256");
    ASSERT_EQ(r.attributes.keys.size(), 1u);
    EXPECT_EQ(r.attributes.keys[0].curve_nid, NID_X9_62_prime256v1);
}

TEST_F(EstSandbox, EnrollWithBootstrapCertificate) {
    test::TempDir tmp("est-bootstrap");
    const auto& dir = tmp.path();
    auto maker = testing::make_ca("Device Maker CA");
    files::write_atomic(dir / "maker.pem", pem(maker.cert.get()), 0644);
    start({"--est-bootstrap-ca", (dir / "maker.pem").string()});
    auto boot_key = testing::ec_key();
    auto boot_cert = testing::issue(maker, boot_key.get(), "device-0042");

    Client c(settings());
    auto key = testing::ec_key();
    Credentials creds{nullptr,
                      http::ClientIdentity::make(boot_cert.get(), nullptr, boot_key.get())};
    auto r = c.simpleenroll(names(), key.get(), creds, raw(ca_certs));
    EXPECT_EQ(EVP_PKEY_eq(X509_get0_pubkey(r.issued.cert.get()), key.get()), 1);

    // Without any credentials the server says 401, and we say what to check.
    auto unknown_key = testing::ec_key();
    auto unknown = testing::make_ca("Unknown Maker");
    auto unknown_cert = testing::issue(unknown, unknown_key.get(), "device-x");
    Credentials bad{nullptr,
                    http::ClientIdentity::make(unknown_cert.get(), nullptr, unknown_key.get())};
    auto e = expect_est_error([&] { c.simpleenroll(names(), key.get(), bad, raw(ca_certs)); });
    EXPECT_EQ(e.status(), 401);
    EXPECT_NE(std::string(e.what()).find("bootstrap certificate"), std::string::npos) << e.what();
}

TEST_F(EstSandbox, ReenrollKeepsSubjectWithNewSerialAndKey) {
    start();
    Client c(settings());
    auto key1 = testing::ec_key();
    auto first = c.simpleenroll(names(), key1.get(), basic_creds(), raw(ca_certs));
    auto key2 = testing::ec_key();
    // The chain goes with the certificate: the EST server (like partners) trusts only the root.
    ASSERT_EQ(first.issued.chain.size(), 1u) << "the issuing CA belongs to the chain";
    Credentials current{nullptr, http::ClientIdentity::make(first.issued.cert.get(),
                                                            raw(first.issued.chain), key1.get())};
    auto second = c.simplereenroll(first.issued.cert.get(), key2.get(), current, raw(ca_certs));
    EXPECT_EQ(X509_NAME_cmp(X509_get_subject_name(first.issued.cert.get()),
                            X509_get_subject_name(second.issued.cert.get())),
              0);
    EXPECT_NE(serial_of(first.issued.cert.get()), serial_of(second.issued.cert.get()));
    EXPECT_EQ(EVP_PKEY_eq(X509_get0_pubkey(second.issued.cert.get()), key2.get()), 1);
    // Re-enroll without a client certificate is refused before anything is sent.
    auto e = expect_est_error([&] {
        c.simplereenroll(first.issued.cert.get(), key2.get(), basic_creds(), raw(ca_certs));
    });
    EXPECT_EQ(e.kind(), Error::Kind::config);
}

TEST_F(EstSandbox, CaLabel) {
    start({"--est-label", "partner-a"});
    auto key = testing::ec_key();
    Client good(settings("partner-a"));
    EXPECT_TRUE(good.simpleenroll(names(), key.get(), basic_creds(), raw(ca_certs)).issued.cert);
    Client bad(settings("partner-b"));
    auto e = expect_est_error(
        [&] { bad.simpleenroll(names(), key.get(), basic_creds(), raw(ca_certs)); });
    EXPECT_EQ(e.status(), 404);
    EXPECT_NE(std::string(e.what()).find("est.ca_label"), std::string::npos) << e.what();
}

TEST_F(EstSandbox, RetriesAfter202) {
    start({"--est-retry-count", "2", "--est-retry-after", "1"});
    Client c(settings());
    auto key = testing::ec_key();
    const auto t0 = std::chrono::steady_clock::now();
    auto r = c.simpleenroll(names(), key.get(), basic_creds(), raw(ca_certs));
    EXPECT_EQ(r.attempts, 3);
    EXPECT_GE(std::chrono::steady_clock::now() - t0, 2s);  // two Retry-After waits honoured
}

TEST_F(EstSandbox, GivesUpAfterMaxAttemptsAndStopsOnRequest) {
    start({"--est-retry-count", "100", "--est-retry-after", "30"});
    Settings s = settings();
    s.max_attempts = 2;
    Client c(s);  // cap 1 s: the server's 30 s are not honoured in full
    auto key = testing::ec_key();
    auto e =
        expect_est_error([&] { c.simpleenroll(names(), key.get(), basic_creds(), raw(ca_certs)); });
    EXPECT_EQ(e.kind(), Error::Kind::pending);
    EXPECT_TRUE(e.retryable());

    s.max_attempts = 10;
    s.retry_after_cap = 60s;
    Client patient(s);
    std::stop_source stop;
    std::jthread stopper([&] {
        std::this_thread::sleep_for(300ms);  // lets the first 202 arrive, then interrupts the wait
        stop.request_stop();
    });
    const auto t0 = std::chrono::steady_clock::now();
    auto e2 = expect_est_error([&] {
        patient.simpleenroll(names(), key.get(), basic_creds(), raw(ca_certs), stop.get_token());
    });
    EXPECT_EQ(e2.kind(), Error::Kind::interrupted);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);
}

TEST_F(EstSandbox, ProofOfPossessionTls13Exporter) {
    start({"--est-pop", "any"});
    Client c(settings());  // csrattrs asks for challengePassword: linking follows
    auto key = testing::ec_key();
    auto r = c.simpleenroll(names(), key.get(), basic_creds(), raw(ca_certs));
    EXPECT_TRUE(r.attributes.challenge_password);
    EXPECT_TRUE(r.pop_linked);
    EXPECT_EQ(r.binding_type, "tls-exporter");
}

TEST_F(EstSandbox, ProofOfPossessionTls12Unique) {
    start({"--est-pop", "tls-unique", "--est-csrattrs", "none"});
    Settings s = settings();
    s.tls_max = http::TlsMax::tls1_2;
    s.pop_linking = true;  // the server asks nothing: the configuration asks for it
    Client c(s);
    auto key = testing::ec_key();
    auto r = c.simpleenroll(names(), key.get(), basic_creds(), raw(ca_certs));
    EXPECT_TRUE(r.pop_linked);
    EXPECT_EQ(r.binding_type, "tls-unique");

    // Without linking, the server that requires it says 400 and why.
    s.pop_linking = false;
    Client unlinked(s);
    auto e = expect_est_error(
        [&] { unlinked.simpleenroll(names(), key.get(), basic_creds(), raw(ca_certs)); });
    EXPECT_EQ(e.status(), 400);
    EXPECT_NE(std::string(e.what()).find("proof of possession"), std::string::npos) << e.what();
}

TEST_F(EstSandbox, WrongBasicCredentials401) {
    start();
    Client c(settings());
    auto key = testing::ec_key();
    http::BasicAuth wrong{"agent-17", "wrong"};
    auto e = expect_est_error([&] {
        c.simpleenroll(names(), key.get(), {&wrong, nullptr}, raw(ca_certs));
    });
    EXPECT_EQ(e.status(), 401);
    EXPECT_FALSE(e.retryable());
    EXPECT_NE(std::string(e.what()).find("est.basic_credentials"), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find("wrong"), std::string::npos)
        << "password leaked: " << e.what();
}

TEST_F(EstSandbox, ServerFailure500) {
    start({"--est-fail", "500"});
    Client c(settings());
    auto key = testing::ec_key();
    auto e =
        expect_est_error([&] { c.simpleenroll(names(), key.get(), basic_creds(), raw(ca_certs)); });
    EXPECT_EQ(e.status(), 500);
    EXPECT_TRUE(e.retryable());
    EXPECT_NE(std::string(e.what()).find("retrying later"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("fault mode 500"), std::string::npos) << e.what();
}

TEST_F(EstSandbox, OversizedResponseIsCut) {
    start();
    Settings s = settings();
    s.max_response_bytes = 100;
    Client c(s);
    auto e = expect_est_error([&] { c.cacerts(); });
    EXPECT_EQ(e.kind(), Error::Kind::bad_response);
    EXPECT_NE(std::string(e.what()).find("larger than 100 bytes"), std::string::npos) << e.what();
}

TEST_F(EstSandbox, HttpSessionReusesItsConnectionAndExposesTheSsl) {
    start();
    http::Options o;
    o.trust = http::ServerTrust::from_ca_file(sandbox->root_ca_file());
    http::Session session(o);
    http::Request req;
    req.url = sandbox->est_base() + "/.well-known/est/cacerts";
    std::string first_binding, second_binding;
    auto r1 = session.perform(req, [&](SSL* ssl) {
        ASSERT_NE(ssl, nullptr);
        first_binding = channel_binding(ssl).bytes;
    });
    EXPECT_EQ(r1.status, 200);
    EXPECT_FALSE(r1.connection_reused);
    EXPECT_EQ(r1.header("content-type").value_or(""), "application/pkcs7-mime");
    auto r2 = session.perform(req, [&](SSL* ssl) { second_binding = channel_binding(ssl).bytes; });
    EXPECT_TRUE(r2.connection_reused);
    EXPECT_EQ(first_binding, second_binding);
    EXPECT_EQ(first_binding.size(), 32u);
}

}  // namespace
}  // namespace mtls::est

namespace mtls::est {
namespace {

TEST_F(EstSandbox, NewConnectionIsDetectedBetweenRequests) {
    start({"--idle-timeout-ms", "250"});
    http::Options o;
    o.trust = http::ServerTrust::from_ca_file(sandbox->root_ca_file());
    http::Session session(o);
    http::Request req;
    req.url = sandbox->est_base() + "/.well-known/est/cacerts";
    std::string first, second;
    EXPECT_EQ(session.perform(req, [&](SSL* ssl) { first = channel_binding(ssl).bytes; }).status,
              200);
    // Longer than the server's idle timeout: it closes the connection in between.
    std::this_thread::sleep_for(1s);
    auto r = session.perform(req, [&](SSL* ssl) { second = channel_binding(ssl).bytes; });
    EXPECT_EQ(r.status, 200);
    EXPECT_FALSE(r.connection_reused);
    EXPECT_NE(first, second);  // what PoP linking compares before sending the CSR
}

TEST_F(EstSandbox, ClientIdentityWithAForeignKeyIsRefusedClearly) {
    start();
    auto ca = testing::make_ca("Some CA");
    auto key = testing::ec_key();
    auto other = testing::ec_key();
    auto cert = testing::issue(ca, key.get(), "me");
    http::Options o;
    o.trust = http::ServerTrust::from_ca_file(sandbox->root_ca_file());
    o.identity = http::ClientIdentity::make(cert.get(), nullptr, other.get());
    http::Session session(o);
    http::Request req;
    req.url = sandbox->est_base() + "/.well-known/est/cacerts";
    try {
        session.perform(req);
        ADD_FAILURE() << "a certificate with a foreign key was accepted";
    } catch (const http::Error& e) {
        EXPECT_NE(std::string(e.what()).find("cannot install the client certificate"),
                  std::string::npos)
            << e.what();
        EXPECT_NE(std::string(e.what()).find(req.url), std::string::npos) << e.what();
    }
}

}  // namespace
}  // namespace mtls::est
