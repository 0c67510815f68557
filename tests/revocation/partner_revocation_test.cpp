// Revocation of the other side, end to end: the real agent (SoftHSM2 token) proxies to the
// sandbox partner API, whose CA revokes certificates, publishes DER CRLs over HTTP and is
// answered for by OpenSSL's own responder (`openssl ocsp -index …`, tests/support/
// ocsp_responder.hpp). The EST server and the AS share the partner's server certificate in
// the sandbox, so their own checks are off here (except in the EST test) and only the
// route's policy decides.
#include <gtest/gtest.h>

#include "tests/support/agent_world.hpp"
#include "tests/support/ocsp_responder.hpp"
#include "tests/support/poll.hpp"

#include <filesystem>
#include <fstream>

namespace mtls::test {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

struct Answer {
    int status = 0;
    std::string body;
};

// GET /partner/<path> through the agent: status and body.
Answer call_partner(const AgentWorld& w, const std::string& path = "api/secure/data") {
    auto r = run_command(
        {"curl", "-sS", "--max-time", "30", "-w", "\n%{http_code}", w.agent->url(path)});
    Answer a;
    const auto nl = r.out.rfind('\n');
    if (nl == std::string::npos) return a;
    a.body = r.out.substr(0, nl);
    a.status = std::atoi(r.out.c_str() + nl + 1);
    return a;
}

// POST to the sandbox's /sandbox/revoke or /sandbox/revocation (with curl).
json sandbox_post(const SandboxProcess& s, const std::string& key, const std::string& query) {
    auto r = run_command({"curl", "-sS", "--fail-with-body", "--cacert", s.ca_bundle(), "-X",
                          "POST", s.info()["revocation"][key].get<std::string>() + "?" + query});
    if (r.exit_code != 0) throw std::runtime_error("sandbox " + key + " failed: " + r.out + r.err);
    return json::parse(r.out);
}

// The agent's last verdict for route "partner" (status --json .revocation.partner).
json route_verdict(const AgentWorld& w) {
    auto st = w.agent->status();
    if (!st || !st->contains("revocation") || !(*st)["revocation"].contains("partner"))
        return json();
    return (*st)["revocation"]["partner"];
}

struct RevocationSetup {
    explicit RevocationSetup(std::string route_policy) : policy(std::move(route_policy)) {}
    std::string policy;
    bool ocsp_in_certs = true;  // AIA OCSP in the sandbox's certificates
    bool staple = false;        // the partner API staples
    std::string extra;          // appended to the agent's config
    std::string est_policy = "off";
    bool pooled = false;  // upstream connections pooled as usual (else: one per request)
};

RevocationSetup no_ocsp(std::string policy) {
    RevocationSetup s(std::move(policy));
    s.ocsp_in_certs = false;
    return s;
}

RevocationSetup stapling() {
    RevocationSetup s("hard-fail");
    s.staple = true;
    return s;
}

RevocationSetup est_hard_fail() {
    RevocationSetup s("off");
    s.est_policy = "hard-fail";
    return s;
}

// An OCSP responder, a sandbox CA with revocation and an agent whose route checks it.
class RevocationWorld {
  public:
    RevocationWorld(const std::string& name, const RevocationSetup& rs)
        : ocsp_(), w_(name, sandbox_flags(rs), agent_setup(rs)) {
        ocsp_.start(w_.sandbox->info(), w_.dir.path());
    }
    OcspResponder& ocsp() { return ocsp_; }
    AgentWorld& w() { return w_; }
    const SandboxProcess& sandbox() const { return *w_.sandbox; }

  private:
    std::vector<std::string> sandbox_flags(const RevocationSetup& rs) {
        std::vector<std::string> f{"--revocation", "--api-token-optional", "--crl-validity", "600"};
        if (rs.ocsp_in_certs) {
            f.push_back("--ocsp-url");
            f.push_back(ocsp_.url());
        }
        // The stapler asks openssl directly: its fetches are not the agent's requests.
        f.push_back("--staple-url");
        f.push_back(ocsp_.direct_url());
        if (rs.staple) f.push_back("--api-staple");
        return f;
    }
    static AgentSetup agent_setup(const RevocationSetup& rs) {
        AgentSetup s;
        s.use_token = false;
        s.est = "revocation = \"" + rs.est_policy + "\"\n";
        s.oauth_profile = "revocation = \"off\"\n";
        // Every request on a new upstream connection (pooled ones expire at once), so each
        // one is checked again.
        s.route = "revocation = \"" + rs.policy + "\"\n" +
                  (rs.pooled ? "" : "[routes.timeouts]\nidle = \"1ms\"\n");
        s.extra = rs.extra;
        // Our own certificate's watch ([renewal] revocation_check) off: these tests are about
        // the other side; it would ask the same responder (counted) and react to a revoked
        // intermediate, which issued our certificate too.
        s.renewal = "revocation_check = \"off\"\n";
        return s;
    }

    OcspResponder ocsp_;  // before the world: its URL goes into the sandbox's certificates
    AgentWorld w_;
};

// Issue #19: refused under hard-fail, allowed with a warning under soft-fail (never refuses).
TEST(PartnerRevocation, RevokedLeafIsRefusedUnderHardFailAndAllowedWithWarningUnderSoftFail) {
    for (const std::string policy : {"hard-fail", "soft-fail"}) {
        SCOPED_TRACE(policy);
        RevocationWorld rw("rev-leaf", RevocationSetup(policy));
        auto& w = rw.w();
        w.agent->start();
        w.agent->wait_healthy();
        auto good = call_partner(w);
        ASSERT_EQ(good.status, 200) << good.body << w.agent->log();
        EXPECT_GE(rw.ocsp().requests(), 1u) << "the leaf was checked at the OCSP responder";
        auto v = route_verdict(w);
        EXPECT_EQ(v.value("status", ""), "good") << v.dump();

        // Revoked at the CA: the cached "good" is dropped with the cache (the agent keeps
        // answers until nextUpdate, one minute with -nmin 1), so restart the agent.
        sandbox_post(rw.sandbox(), "revoke", "cert=partner-leaf&reason=keyCompromise");
        rw.ocsp().reload();
        w.agent->stop();
        w.agent->start();
        w.agent->wait_healthy();
        auto after = call_partner(w);
        const bool hard = policy == "hard-fail";
        if (hard) {
            EXPECT_EQ(after.status, 502) << after.body;
            EXPECT_NE(after.body.find("upstream_revocation"), std::string::npos) << after.body;
            EXPECT_NE(after.body.find("keyCompromise"), std::string::npos) << after.body;
        } else {
            EXPECT_EQ(after.status, 200) << after.body << w.agent->log();
            const auto log = w.agent->log();
            const auto warned = log.find("revocation.revoked_proceeding");
            ASSERT_NE(warned, std::string::npos) << log;
            EXPECT_NE(log.find("keyCompromise", warned), std::string::npos) << log;
        }
        EXPECT_EQ(route_verdict(w).value("status", ""), "revoked");
        const auto shown = w.agent->ctl({"status"}).out;
        EXPECT_NE(shown.find("revocation (" + policy + "): revoked: "), std::string::npos) << shown;
        const auto stats = rw.sandbox().stats();
        EXPECT_EQ(stats["api_requests"].get<std::uint64_t>(), hard ? 1u : 2u)
            << "requests that reached the partner: " << stats.dump();
    }
}

TEST(PartnerRevocation, StapledGoodResponseNeedsNoResponderRoundTrip) {
    RevocationWorld rw("rev-staple", stapling());
    auto& w = rw.w();
    auto st = sandbox_post(rw.sandbox(), "admin", "staple=on");
    ASSERT_TRUE(st["staple"]["have_response"].get<bool>()) << st.dump();
    w.agent->start();
    w.agent->wait_healthy();
    for (int i = 0; i < 3; ++i) {
        auto a = call_partner(w);
        ASSERT_EQ(a.status, 200) << a.body << w.agent->log();
    }
    EXPECT_EQ(rw.ocsp().requests(), 0u) << "the staple answered; the responder was never asked";
    auto v = route_verdict(w);
    EXPECT_EQ(v.value("status", ""), "good") << v.dump();
    auto after = sandbox_post(rw.sandbox(), "admin", "");
    EXPECT_GE(after["staple"]["sent"].get<std::uint64_t>(), 1u) << after.dump();
}

TEST(PartnerRevocation, ResponderDownSoftFailProceedsHardFailRefuses) {
    for (const std::string policy : {"soft-fail", "hard-fail"}) {
        SCOPED_TRACE(policy);
        RevocationWorld rw("rev-down", RevocationSetup(policy));
        auto& w = rw.w();
        // Neither the responder nor the CRL distribution point answers.
        rw.ocsp().down();
        sandbox_post(rw.sandbox(), "admin", "crl=down");
        w.agent->start();
        w.agent->wait_healthy();
        auto a = call_partner(w);
        if (policy == "soft-fail") {
            EXPECT_EQ(a.status, 200) << a.body;
            EXPECT_TRUE(poll_until([&] {
                return w.agent->log().find("revocation.unknown_proceeding") != std::string::npos;
            })) << w.agent->log();
        } else {
            EXPECT_EQ(a.status, 502) << a.body;
            EXPECT_NE(a.body.find("upstream_revocation"), std::string::npos) << a.body;
            EXPECT_NE(a.body.find("unreachable"), std::string::npos) << a.body;
        }
        EXPECT_EQ(route_verdict(w).value("status", ""), "unknown");
    }
}

TEST(PartnerRevocation, CachedAnswerKeepsWorkingWhileTheResponderIsDown) {
    RevocationWorld rw("rev-cache", RevocationSetup("hard-fail"));
    auto& w = rw.w();
    w.agent->start();
    w.agent->wait_healthy();
    ASSERT_EQ(call_partner(w).status, 200) << w.agent->log();
    const auto asked = rw.ocsp().requests();
    rw.ocsp().down();
    sandbox_post(rw.sandbox(), "admin", "crl=down");
    // New connections (pooled ones expire at once) are checked against the cached answers,
    // valid until nextUpdate (a minute): no fetch, no refusal.
    for (int i = 0; i < 3; ++i) {
        auto a = call_partner(w);
        EXPECT_EQ(a.status, 200) << a.body;
    }
    EXPECT_EQ(rw.ocsp().requests(), asked);
    auto v = route_verdict(w);
    EXPECT_EQ(v.value("status", ""), "good") << v.dump();
    EXPECT_EQ(v.value("source", ""), "cache") << v.dump();
    EXPECT_FALSE(v.value("next_update", "").empty()) << v.dump();
}

TEST(PartnerRevocation, RevokedIntermediateIsRefused) {
    RevocationWorld rw("rev-inter", RevocationSetup("hard-fail"));
    auto& w = rw.w();
    sandbox_post(rw.sandbox(), "revoke", "cert=intermediate&reason=cACompromise");
    w.agent->start();
    w.agent->wait_healthy();
    auto a = call_partner(w);
    EXPECT_EQ(a.status, 502) << a.body;
    EXPECT_NE(a.body.find("upstream_revocation"), std::string::npos) << a.body;
    EXPECT_NE(a.body.find("depth 1"), std::string::npos) << a.body;
    EXPECT_NE(a.body.find("cACompromise"), std::string::npos) << a.body;
    EXPECT_NE(a.body.find("source crl"), std::string::npos) << a.body;
}

TEST(PartnerRevocation, CrlDistributionPointOnly) {
    RevocationWorld rw("rev-crl", no_ocsp("hard-fail"));
    auto& w = rw.w();
    w.agent->start();
    w.agent->wait_healthy();
    ASSERT_EQ(call_partner(w).status, 200) << w.agent->log();
    auto v = route_verdict(w);
    EXPECT_EQ(v.value("status", ""), "good") << v.dump();
    EXPECT_EQ(v.value("source", ""), "crl") << v.dump();
    EXPECT_EQ(rw.ocsp().requests(), 0u);
    auto info = sandbox_post(rw.sandbox(), "admin", "");
    EXPECT_GE(info["crl_requests"].get<std::uint64_t>(), 2u) << "issuing and root CRL fetched";

    sandbox_post(rw.sandbox(), "revoke", "cert=partner-leaf&reason=superseded");
    w.agent->stop();  // the cached CRL is good for 10 minutes: start with an empty cache
    w.agent->start();
    w.agent->wait_healthy();
    auto a = call_partner(w);
    EXPECT_EQ(a.status, 502) << a.body;
    EXPECT_NE(a.body.find("superseded"), std::string::npos) << a.body;
}

// A local CRL file; with pooling on, the pooled connection to the partner is closed instead
// of reused once the new CRL lists its certificate.
TEST(PartnerRevocation, LocalCrlFileForAnAirGappedPartner) {
    for (const bool pooled : {false, true}) {
        SCOPED_TRACE(pooled ? "pooled" : "a connection per request");
        const fs::path crls =
            fs::temp_directory_path() /
            ("rev-crlfile-" + std::to_string(::getpid()) + (pooled ? "-pooled" : ""));
        fs::create_directories(crls);
        const auto leaf_crl = crls / "partner-issuing.crl", root_crl = crls / "partner-root.crl";
        // Nothing is reachable: the agent has only the files (written before it starts: the
        // config check wants them readable).
        RevocationSetup rs = no_ocsp("hard-fail");
        rs.pooled = pooled;
        rs.extra = "[revocation]\ncrl_files = [\"" + leaf_crl.string() + "\", \"" +
                   root_crl.string() + "\"]\n";
        RevocationWorld rw("rev-crlfile", rs);
        auto& w = rw.w();
        auto info = rw.sandbox().info()["revocation"];
        sandbox_post(rw.sandbox(), "admin", "crl=down");
        auto copy = [&](const std::string& from, const fs::path& to) {
            fs::copy_file(from, to.string() + ".new", fs::copy_options::overwrite_existing);
            fs::rename(to.string() + ".new", to);
        };
        copy(info["issuing_crl_file"], leaf_crl);
        copy(info["root_crl_file"], root_crl);
        w.agent->start();
        w.agent->wait_healthy();
        ASSERT_EQ(call_partner(w).status, 200) << w.agent->log();
        EXPECT_EQ(route_verdict(w).value("source", ""), "crl-file") << route_verdict(w).dump();

        // The CA revokes; the operator copies the new CRL: the agent reloads the changed file.
        sandbox_post(rw.sandbox(), "revoke", "cert=partner-leaf&reason=keyCompromise");
        copy(info["issuing_crl_file"], leaf_crl);
        Answer a;
        EXPECT_TRUE(poll_until([&] { return (a = call_partner(w)).status == 502; },
                               std::chrono::seconds(15), std::chrono::milliseconds(200)))
            << a.status << " " << a.body;
        EXPECT_NE(a.body.find("keyCompromise"), std::string::npos) << a.body;
        EXPECT_EQ(route_verdict(w).value("status", ""), "revoked");
        if (pooled) {
            EXPECT_NE(w.agent->log().find("revocation.pooled_connection_closed"), std::string::npos)
                << w.agent->log();
        }
        fs::remove_all(crls);
    }
}

// A partner whose CRL distribution point is down is refused under hard-fail; the operator
// adds its CRL as a local file with a reload ([revocation] crl_files) and the next request
// is allowed on the file's answer, without a restart and without waiting out the failure
// the checker remembers.
TEST(PartnerRevocation, ReloadAddsCrlFilesAndTheNextRequestUsesThem) {
    RevocationWorld rw("rev-reload", no_ocsp("hard-fail"));
    auto& w = rw.w();
    sandbox_post(rw.sandbox(), "admin", "crl=down");
    w.agent->start();
    w.agent->wait_healthy();
    auto a = call_partner(w);
    ASSERT_EQ(a.status, 502) << a.body;
    EXPECT_NE(a.body.find("upstream_revocation"), std::string::npos) << a.body;

    auto info = rw.sandbox().info()["revocation"];
    const fs::path leaf_crl = w.dir.path() / "partner-issuing.crl";
    const fs::path root_crl = w.dir.path() / "partner-root.crl";
    fs::copy_file(info["issuing_crl_file"].get<std::string>(), leaf_crl);
    fs::copy_file(info["root_crl_file"].get<std::string>(), root_crl);
    w.agent->write_config(w.agent->config_text() + "\n[revocation]\ncrl_files = [\"" +
                          leaf_crl.string() + "\", \"" + root_crl.string() + "\"]\n");
    auto r = w.agent->ctl({"reload"});
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    a = call_partner(w);
    EXPECT_EQ(a.status, 200) << a.body;
    EXPECT_EQ(route_verdict(w).value("source", ""), "crl-file") << route_verdict(w).dump();
}

TEST(EstServerRevocation, EnrollmentRefusedUnderHardFail) {
    RevocationWorld rw("rev-est", est_hard_fail());
    auto& w = rw.w();
    // The sandbox's EST server presents the partner certificate: revoke it.
    sandbox_post(rw.sandbox(), "revoke", "cert=partner-leaf&reason=keyCompromise");
    rw.ocsp().reload();
    w.agent->start();
    EXPECT_TRUE(poll_until(
        [&] { return w.agent->log().find("EST server certificate revoked") != std::string::npos; },
        std::chrono::seconds(30), std::chrono::milliseconds(50)))
        << w.agent->log();
    auto st = w.agent->status();
    ASSERT_TRUE(st);
    EXPECT_NE((*st)["state"], "healthy") << st->dump();
    EXPECT_EQ(rw.sandbox().stats()["est_enrolls"].get<std::uint64_t>(), 0u)
        << "the request was never sent to the revoked server";
}

}  // namespace
}  // namespace mtls::test
