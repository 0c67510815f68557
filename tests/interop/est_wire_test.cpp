// Issue #15, EST wire interoperability, at the agent level: the real mtls-agent enrolls,
// renews (`mtls-agentctl renew --wait`), rotates (`rotate --wait`) and proxies a call
// against sandbox EST servers modelled on real ones —
// - strict line-broken base64 request bodies (libest's BIO decoder; the sandbox default),
// - responses as one unbroken unpadded base64 line (RFC 8951 §3),
// - HTTP authentication on re-enrollment in addition to the certificate (RFC 7030 §3.2.3,
//   libest's default), Basic and Digest, and a Digest-only simpleenroll (auth = "digest"),
// - a certificate-only server (bootstrap certificate, no HTTP credentials at all),
// - a PoP-required TLS 1.2 server with session-ID resumption (tls-unique),
// - a 202 whose body ends when the server closes the connection, and a CGI Status field —
// and fails with a message naming what the server wants and the key to set when the
// configuration cannot satisfy it.
#include "common/atomic_file.hpp"
#include "pkcs11/token.hpp"
#include "tests/support/agent_world.hpp"
#include "tests/support/test_pki.hpp"

#include <gtest/gtest.h>

#include <iostream>

namespace {

using namespace mtls;
using namespace mtls::test;
using namespace std::chrono_literals;
using nlohmann::json;

AgentSetup quiet_setup() {
    AgentSetup s;
    // No automatic retry during a test: the renewals are the ones the test asks for.
    s.renewal = "backoff_initial = \"5m\"\nbackoff_max = \"10m\"\n";
    return s;
}

std::vector<std::string> est_modes(std::initializer_list<const char*> kv) {
    std::vector<std::string> out;
    for (const char* m : kv) {
        out.emplace_back("--est-mode");
        out.emplace_back(m);
    }
    return out;
}

// First enrollment, renew, rotate; after each a consistent identity and a proxied call with
// a bound token. Returns the sandbox's stats at the end.
json enroll_renew_rotate(AgentWorld& w) {
    w.agent->start();
    w.agent->wait_healthy(60s);
    expect_consistent(w);
    const auto first = w.agent->status().value()["identity"]["serial"];

    auto renew = w.agent->ctl({"renew", "--wait"});
    EXPECT_EQ(renew.exit_code, 0) << renew.out << renew.err << "\nlog:\n" << w.agent->log();
    expect_consistent(w);
    const auto renewed = w.agent->status().value()["identity"]["serial"];
    EXPECT_NE(renewed, first);

    auto rotate = w.agent->ctl({"rotate", "--wait"});
    EXPECT_EQ(rotate.exit_code, 0) << rotate.out << rotate.err << "\nlog:\n" << w.agent->log();
    expect_consistent(w);
    EXPECT_NE(w.agent->status().value()["identity"]["serial"], renewed);

    auto stats = w.sandbox->stats();
    EXPECT_GE(stats["est_enrolls"].get<int>(), 1) << stats;
    EXPECT_GE(stats["est_reenrolls"].get<int>(), 2) << stats;
    return stats;
}

// The sandbox's EST mode settings (GET /sandbox/stats does not carry them: the admin info).
json est_mode(const AgentWorld& w) {
    auto r = run_command({"curl", "-sS", "--fail", "--cacert", w.sandbox->ca_bundle(),
                          w.sandbox->info()["admin"]["mode"].get<std::string>()});
    auto j = json::parse(r.out, nullptr, false);
    return j.is_discarded() ? json() : j["est"];
}

// How many EST requests the sandbox answered with `status` (GET /sandbox/requests).
int est_answers(const AgentWorld& w, int status) {
    auto r = run_command({"curl", "-sS", "--fail", "--cacert", w.sandbox->ca_bundle(),
                          w.sandbox->info()["admin"]["requests"].get<std::string>()});
    auto j = json::parse(r.out, nullptr, false);
    int n = 0;
    if (j.is_object()) j = j.value("requests", json::array());
    for (const auto& q : j.is_array() ? j : json::array())
        if (q.value("service", "") == "est" && q.value("status", 0) == status) ++n;
    return n;
}

// After a failed renewal: the identity is the one from before, and calls still work.
void expect_identity_kept(const AgentWorld& w, const json& before) {
    auto st = w.agent->status().value();
    EXPECT_EQ(st["identity"]["serial"], before["identity"]["serial"]) << st;
    EXPECT_EQ(bound_answer(200, w.call().dump()), "");
}

TEST(EstWire, StrictLineBase64ServerIsTheDefault) {
    AgentWorld w{"wire-lines", {}, quiet_setup()};
    EXPECT_EQ(est_mode(w).value("base64", ""), "lines") << est_mode(w);
    enroll_renew_rotate(w);
}

// testrfc7030.com presents a TLS certificate from a public CA while it enrolls under its own
// test CA, which /cacerts returns. The operator pinned the server's certificate
// (est.pinned_sha256): after the first contact RFC 7030 §4.1.3 has the client trust the
// /cacerts certificates for the EST server, which do not cover its TLS certificate — the pin
// must still count for renew and rotate.
TEST(EstWire, TlsCertificateFromAnotherCaThanTheOneItEnrollsFor) {
    AgentWorld w("est-wire-separate-tls", {"--est-tls-ca", "separate"}, quiet_setup());
    const auto tls_cert = w.sandbox->info()["est"]["tls_cert"].get<std::string>();
    auto fp =
        run_command({"openssl", "x509", "-in", tls_cert, "-noout", "-fingerprint", "-sha256"});
    ASSERT_EQ(fp.exit_code, 0) << fp.err;
    const auto pin = fp.out.substr(fp.out.find('=') + 1, 95);  // "AB:CD:…" (32 bytes)
    auto cfg = w.agent->config_text();
    const auto at = cfg.find("trust_anchor = ");  // the first one is [est]'s
    cfg.replace(at, cfg.find('\n', at) - at, "pinned_sha256 = \"" + pin + "\"");
    w.agent->write_config(cfg);
    enroll_renew_rotate(w);
}

TEST(EstWire, OneLineUnpaddedResponses) {
    AgentWorld w{"wire-oneline", est_modes({"est_response_base64=oneline"}), quiet_setup()};
    EXPECT_EQ(est_mode(w).value("response_base64", ""), "oneline");
    enroll_renew_rotate(w);
}

TEST(EstWire, ReenrollmentRequiresHttpBasicToo) {
    AgentWorld w{"wire-reauth-basic", est_modes({"reenroll_auth=basic"}), quiet_setup()};
    enroll_renew_rotate(w);
    // Each re-enrollment's connection was challenged first (its csrattrs request, or the
    // simplereenroll itself): the password went out only in answer to a 401.
    EXPECT_GE(est_answers(w, 401), 2);
}

TEST(EstWire, ReenrollmentRequiresHttpDigestToo) {
    AgentWorld w{"wire-reauth-digest", est_modes({"reenroll_auth=digest"}), quiet_setup()};
    enroll_renew_rotate(w);
}

TEST(EstWire, DigestOnlyServerWithAuthDigest) {
    auto setup = quiet_setup();
    setup.est_auth = "auth = \"digest\"\nbasic_credentials = {credentials}";
    AgentWorld w{"wire-digest-only", est_modes({"enroll_auth=digest", "reenroll_auth=digest"}),
                 setup};
    enroll_renew_rotate(w);
}

TEST(EstWire, DigestSha256Only) {
    auto setup = quiet_setup();
    setup.est_auth = "auth = \"digest\"\nbasic_credentials = {credentials}";
    AgentWorld w{
        "wire-digest-sha256",
        est_modes({"enroll_auth=digest", "reenroll_auth=digest", "digest_algorithms=sha-256"}),
        setup};
    enroll_renew_rotate(w);
}

// auth = "basic" sends Basic up front; a Digest-only server answers 401 with Digest
// challenges, and the agent answers them with the same credentials.
TEST(EstWire, AuthBasicMeetsADigestOnlyServer) {
    AgentWorld w{"wire-basic-vs-digest", est_modes({"enroll_auth=digest", "reenroll_auth=digest"}),
                 quiet_setup()};
    enroll_renew_rotate(w);
}

// A certificate-only server: a bootstrap certificate from the device maker's CA for the
// first enrollment, the current certificate after; no HTTP credentials anywhere.
TEST(EstWire, CertificateOnlyServer) {
    TempDir maker_dir("wire-maker");
    auto maker = make_test_ca("Device Maker CA");
    const auto maker_pem = maker_dir.write("maker.pem", to_pem(maker.cert.get()));
    const auto boot_pem = maker_dir.path() / "bootstrap.pem";
    auto setup = quiet_setup();
    setup.est_auth =
        "auth = \"bootstrap-cert\"\nbootstrap_cert = " + json(boot_pem.string()).dump() +
        "\nbootstrap_key = \"@BOOTSTRAP_KEY@\"";
    AgentWorld w{"wire-cert-only", {"--est-bootstrap-ca", maker_pem.string()}, setup};
    {
        // The bootstrap key lives on the agent's token; its certificate from the maker CA.
        w.token.use();
        auto token = pkcs11::Token::open(
            {w.token.module, w.token.uri, pkcs11::PinSource::file(w.token.pin_file)});
        auto info = token->generate_key(config::KeyType::ec_p256, "bootstrap");
        auto pub = token->public_key(info.id);
        auto cert = issue_cert(maker, pub.get(), "device-0042", CertUsage::client);
        write_file(boot_pem.string(), to_pem(cert.get()));
        auto cfg = w.agent->config_text();
        const auto at = cfg.find("@BOOTSTRAP_KEY@");
        ASSERT_NE(at, std::string::npos);
        cfg.replace(at, 15, info.uri);
        w.agent->write_config(cfg);
    }
    EXPECT_EQ(w.agent->config_text().find("basic_credentials"), std::string::npos);
    enroll_renew_rotate(w);
}

TEST(EstWire, PopRequiredTls12ServerWithSessionIds) {
    AgentWorld w{
        "wire-pop-tls12", {"--est-pop", "tls-unique", "--est-tls-max", "1.2"}, quiet_setup()};
    auto stats = enroll_renew_rotate(w);
    EXPECT_EQ(stats["est_rejected"].get<int>(), 0) << stats;
    const auto log = w.agent->log();
    EXPECT_NE(log.find("tls-unique"), std::string::npos) << log;
}

TEST(EstWire, AcceptedThenCloseAndStatusField) {
    AgentWorld w{"wire-202-close",
                 {"--est-retry-count", "1", "--est-retry-after", "1", "--est-mode", "est_202=close",
                  "--est-mode", "est_status_field=1"},
                 quiet_setup()};
    w.agent->start();
    w.agent->wait_healthy(60s);
    expect_consistent(w);
    auto stats = w.sandbox->stats();
    EXPECT_EQ(stats["est_retry_later"].get<int>(), 1) << stats;
    // And once more on re-enrollment.
    w.sandbox->set_mode("est_retry=1");
    auto renew = w.agent->ctl({"renew", "--wait"});
    EXPECT_EQ(renew.exit_code, 0) << renew.out << renew.err << "\nlog:\n" << w.agent->log();
    expect_consistent(w);
    EXPECT_EQ(w.sandbox->stats()["est_retry_later"].get<int>(), 2);
}

// Re-enrollment needs HTTP authentication, and the configuration has none: the error names
// the scheme the server asked for and the key to set.
TEST(EstWire, ReenrollAuthWithoutCredentialsSaysWhatToSet) {
    TempDir maker_dir("wire-maker2");
    auto maker = make_test_ca("Device Maker CA");
    const auto maker_pem = maker_dir.write("maker.pem", to_pem(maker.cert.get()));
    const auto boot_pem = maker_dir.path() / "bootstrap.pem";
    auto setup = quiet_setup();
    setup.est_auth =
        "auth = \"bootstrap-cert\"\nbootstrap_cert = " + json(boot_pem.string()).dump() +
        "\nbootstrap_key = \"@BOOTSTRAP_KEY@\"";
    AgentWorld w{"wire-reauth-none", {"--est-bootstrap-ca", maker_pem.string()}, setup};
    {
        w.token.use();
        auto token = pkcs11::Token::open(
            {w.token.module, w.token.uri, pkcs11::PinSource::file(w.token.pin_file)});
        auto info = token->generate_key(config::KeyType::ec_p256, "bootstrap");
        auto cert =
            issue_cert(maker, token->public_key(info.id).get(), "device-7", CertUsage::client);
        write_file(boot_pem.string(), to_pem(cert.get()));
        auto cfg = w.agent->config_text();
        cfg.replace(cfg.find("@BOOTSTRAP_KEY@"), 15, info.uri);
        w.agent->write_config(cfg);
    }
    w.agent->start();
    const auto before = w.agent->wait_healthy(60s);
    w.sandbox->set_mode("reenroll_auth=digest");
    auto r = w.agent->ctl({"renew", "--wait"});
    std::cout << "[ agent    ] " << r.err;
    EXPECT_NE(r.exit_code, 0) << r.out;
    const auto text = r.out + r.err;
    for (const char* want :
         {"simplereenroll", "401", "HTTP Digest", "in addition to our certificate",
          "no credentials are configured", "est.basic_credentials"})
        EXPECT_NE(text.find(want), std::string::npos) << "want \"" << want << "\" in:\n" << text;
    expect_identity_kept(w, before);
}

// Digest required, wrong password: the message says credentials were offered and refused.
TEST(EstWire, DigestWithAWrongPasswordSaysOfferedAndRefused) {
    auto setup = quiet_setup();
    setup.est_auth = "auth = \"digest\"\nbasic_credentials = {credentials}";
    AgentWorld w{"wire-digest-wrong", est_modes({"enroll_auth=digest", "reenroll_auth=digest"}),
                 setup};
    w.agent->start();
    const auto before = w.agent->wait_healthy(60s);
    // The agent reads the file for every EST operation: change the password under it.
    files::write_atomic(w.dir.path() / "est-basic", "test-agent:not-the-password\n", 0600);
    auto r = w.agent->ctl({"renew", "--wait"});
    std::cout << "[ agent    ] " << r.err;
    EXPECT_NE(r.exit_code, 0) << r.out;
    const auto text = r.out + r.err;
    for (const char* want :
         {"simplereenroll", "401", "HTTP Digest", "offered and refused", "est.basic_credentials"})
        EXPECT_NE(text.find(want), std::string::npos) << "want \"" << want << "\" in:\n" << text;
    expect_identity_kept(w, before);
}

}  // namespace
