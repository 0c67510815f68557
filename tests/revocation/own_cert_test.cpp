// Watching our own certificate ([renewal] revocation_check, issue #19) with the real agent, a
// SoftHSM2 token and the partner sandbox run with --revocation (its CA puts a CRL
// distribution point in every certificate it issues and revokes on request): under a steady
// load, our certificate revoked at the CA is noticed within one check interval; the agent
// reports failing, enrolls a new key with the bootstrap credentials and serves again, and the
// partner sees no request with the revoked certificate after that. A CA that cannot be
// reached gives "unknown", which is counted and not acted on.
#include "tests/support/agent_world.hpp"
#include "tests/support/http_load.hpp"
#include "tests/support/ocsp_responder.hpp"
#include "tests/support/token_objects.hpp"

#include <gtest/gtest.h>

namespace {

using namespace mtls::test;
using namespace std::chrono_literals;
using nlohmann::json;

// POST to the sandbox's revocation admin (/sandbox/revoke, /sandbox/revocation).
void own_cert_admin(const SandboxProcess& sandbox, const std::string& path_and_query) {
    const auto base = sandbox.info()["revocation"]["admin"].get<std::string>();
    const auto url = base.substr(0, base.find("/sandbox/")) + path_and_query;
    auto r = run_command(
        {"curl", "-sS", "--fail-with-body", "--cacert", sandbox.ca_bundle(), "-X", "POST", url});
    ASSERT_EQ(r.exit_code, 0) << url << ": " << r.out << r.err;
}

AgentSetup own_cert_setup() {
    AgentSetup setup;
    setup.renewal =
        "revocation_check = \"ocsp-then-crl\"\nrevocation_check_interval = \"1s\"\n"
        "backoff_initial = \"1s\"\n";
    return setup;
}

TEST(OwnCertificate, RevokedAtTheCaIsReplacedWithinOneInterval) {
    AgentWorld w("rev-own", {"--revocation", "--crl-validity", "3600"}, own_cert_setup());
    w.agent->start();
    auto st = w.agent->wait_status(
        [](const json& s) {
            return s["state"] == "healthy" && s["own_revocation"]["result"] == "good";
        },
        60s, "healthy, our certificate checked good");
    const auto old_serial = st["identity"]["serial"].get<std::string>();
    const auto old_x5t = st["identity"]["thumbprint_sha256"].get<std::string>();
    const auto old_key = st["identity"]["key_id"].get<std::string>();
    EXPECT_EQ(st["own_revocation"]["mode"], "ocsp-then-crl");

    HttpLoad load(w.agent->port(), "/partner/api/secure/data", 8,
                  [](unsigned status, const std::string& body) -> std::string {
                      if (status == 503) return "";  // while without identity
                      return bound_answer(status, body);
                  });
    ASSERT_TRUE(poll_until([&] { return load.ok_so_far() >= 50; }, 60s)) << "no traffic";

    own_cert_admin(*w.sandbox, "/sandbox/revoke?serial=" + old_serial + "&reason=keyCompromise");
    const auto revoked_at = std::chrono::steady_clock::now();

    // Noticed: failing (or already replaced, the enrollment is quick).
    std::optional<std::uint64_t> count_at_detection;
    json seen;
    ASSERT_TRUE(poll_until(
        [&] {
            auto s = w.agent->status();
            if (!s) return false;
            const bool failing = (*s)["state"] == "failing";
            const bool replaced =
                (*s)["identity"].is_object() && (*s)["identity"]["serial"] != old_serial;
            if (!failing && !replaced) return false;
            count_at_detection = w.sandbox->api_requests_with_cert(old_x5t);
            seen = *s;
            return true;
        },
        30s, 20ms))
        << "the revocation was never noticed; log:\n"
        << w.agent->log();
    const auto noticed_after = std::chrono::steady_clock::now() - revoked_at;
    EXPECT_LT(noticed_after, 5s) << "not within one check interval (1 s) and a fetch";
    if (seen["state"] == "failing") {
        EXPECT_NE(seen["reasons"].dump().find("our certificate was revoked (keyCompromise"),
                  std::string::npos)
            << seen.dump(2);
    }

    // Serving again with a new key and certificate from a fresh enrollment.
    auto now = w.agent->wait_status(
        [&](const json& s) {
            return s["state"] == "healthy" && s["identity"].is_object() &&
                   s["identity"]["serial"] != old_serial;
        },
        60s, "healthy with a new certificate");
    EXPECT_NE(now["identity"]["key_id"], old_key);
    ASSERT_TRUE(now["renewal"]["last_compromise"].is_object()) << now.dump(2);
    EXPECT_EQ(now["renewal"]["last_compromise"]["trigger"], "revoked");
    EXPECT_NE(now["renewal"]["last_compromise"]["reason"].get<std::string>().find("keyCompromise"),
              std::string::npos);
    EXPECT_TRUE(token_objects_with_id(w.token, old_key).empty()) << "the revoked key is left";
    const auto ok_after = load.ok_so_far();
    EXPECT_TRUE(poll_until([&] { return load.ok_so_far() >= ok_after + 100; }, 60s))
        << "the load did not resume";
    const auto report = load.stop();
    EXPECT_EQ(report.failed, 0u) << (report.samples.empty() ? "" : report.samples.front());

    // Not one request with the revoked certificate after the detection.
    EXPECT_EQ(w.sandbox->api_requests_with_cert(old_x5t), *count_at_detection);
    const auto stats = w.sandbox->stats();
    EXPECT_EQ(stats["est_enrolls"], 2) << stats.dump();
    EXPECT_EQ(stats["est_reenrolls"], 0) << stats.dump();

    // The new certificate is watched too; metrics and status tell the story.
    w.agent->wait_status([](const json& s) { return s["own_revocation"]["result"] == "good"; }, 30s,
                         "the new certificate checked good");
    const auto text = w.agent->ctl({"status"}).out;
    EXPECT_NE(text.find("revocation: good at "), std::string::npos) << text;
    EXPECT_NE(text.find("last compromise: "), std::string::npos) << text;
    auto m = w.agent->ctl({"metrics"});
    EXPECT_NE(m.out.find("mtls_agent_own_revocation_checks_total{result=\"revoked\"} 1"),
              std::string::npos)
        << m.out;
    EXPECT_NE(m.out.find("mtls_agent_own_revocation_result{result=\"good\"} 1"), std::string::npos);
    EXPECT_NE(m.out.find("mtls_agent_own_revocation_last_check_timestamp_seconds "),
              std::string::npos);
    expect_consistent(w);
    EXPECT_NE(w.agent->log().find("renewal.own_certificate_revoked"), std::string::npos);
}

// The same through OCSP: the sandbox CA puts OpenSSL's own responder (`openssl ocsp`) in the
// AIA of what it issues, which is asked before any CRL.
TEST(OwnCertificate, RevokedAnswerFromTheOcspResponderIsActedOn) {
    OcspResponder ocsp;  // before the world: its URL goes into the certificates
    AgentWorld w("rev-own-ocsp", {"--revocation", "--ocsp-url", ocsp.url()}, own_cert_setup());
    ocsp.start(w.sandbox->info(), w.dir.path());
    w.agent->start();
    // (openssl ocsp reads its index after serving a request: the first answer for a new
    // certificate may be "unknown", and the CRL answers; the next check has the OCSP one)
    auto st = w.agent->wait_status(
        [](const json& s) {
            return s["state"] == "healthy" && s["own_revocation"]["result"] == "good" &&
                   s["own_revocation"]["detail"] == "good (source ocsp)";
        },
        60s, "healthy, our certificate checked good by OCSP");
    const auto asked = ocsp.requests();
    EXPECT_GT(asked, 0u);
    const auto old_serial = st["identity"]["serial"].get<std::string>();
    const auto old_x5t = st["identity"]["thumbprint_sha256"].get<std::string>();

    own_cert_admin(*w.sandbox, "/sandbox/revoke?serial=" + old_serial + "&reason=keyCompromise");
    ocsp.reload();
    auto now = w.agent->wait_status(
        [&](const json& s) {
            return s["state"] == "healthy" && s["identity"].is_object() &&
                   s["identity"]["serial"] != old_serial;
        },
        60s, "healthy with a new certificate");
    EXPECT_EQ(now["renewal"]["last_compromise"]["trigger"], "revoked");
    EXPECT_NE(now["renewal"]["last_compromise"]["reason"].get<std::string>().find("ocsp"),
              std::string::npos)
        << now["renewal"]["last_compromise"].dump();
    const auto count = w.sandbox->api_requests_with_cert(old_x5t);
    EXPECT_EQ(w.call()["token"]["bound_to_this_certificate"], true);
    EXPECT_EQ(w.sandbox->api_requests_with_cert(old_x5t), count);
    EXPECT_GT(ocsp.requests(), asked);
    expect_consistent(w);
}

TEST(OwnCertificate, UnreachableCrlIsCountedNotActedOn) {
    AgentWorld w("rev-own-unknown", {"--revocation", "--crl-validity", "3600"}, own_cert_setup());
    w.agent->start();
    const auto before = w.agent->wait_status(
        [](const json& s) {
            return s["state"] == "healthy" && s["own_revocation"]["result"] == "good";
        },
        60s, "healthy, checked good");
    own_cert_admin(*w.sandbox, "/sandbox/revocation?crl=down");
    auto st = w.agent->wait_status(
        [](const json& s) { return s["own_revocation"]["result"] == "unknown"; }, 30s,
        "the check unknown while the CRL is unreachable");
    EXPECT_EQ(st["state"], "healthy") << st.dump(2);
    EXPECT_EQ(st["identity"]["serial"], before["identity"]["serial"]);
    EXPECT_TRUE(st["renewal"]["last_compromise"].is_null());
    EXPECT_EQ(w.call()["token"]["bound_to_this_certificate"], true);
    auto m = w.agent->ctl({"metrics"});
    EXPECT_EQ(m.out.find("mtls_agent_own_revocation_checks_total{result=\"unknown\"} 0"),
              std::string::npos)
        << m.out;
    EXPECT_NE(w.agent->log().find("renewal.own_revocation_unknown"), std::string::npos);
    own_cert_admin(*w.sandbox, "/sandbox/revocation?crl=up");
    w.agent->wait_status([](const json& s) { return s["own_revocation"]["result"] == "good"; }, 30s,
                         "good again");
}

TEST(OwnCertificate, OffChecksNothing) {
    AgentSetup setup;
    setup.renewal = "revocation_check = \"off\"\n";
    AgentWorld w("rev-own-off", {"--revocation"}, setup);
    w.agent->start();
    auto st = w.agent->wait_healthy(60s);
    EXPECT_EQ(st["own_revocation"]["mode"], "off");
    EXPECT_EQ(st["own_revocation"]["result"], "off");
    EXPECT_EQ(w.sandbox->info()["revocation"].is_object(), true);
}

}  // namespace
