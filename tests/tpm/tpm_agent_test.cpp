// The real mtls-agent on a tpm2-pkcs11 token (software TPM behind tpm2-abrmd): it enrolls
// through the sandbox EST server with a key generated in the TPM, gets an access token bound
// to that certificate, proxies a call with it, and after a restart goes on with the same key;
// and it rotates the key 3 times under proxy load without one failed request. The agent gets the
// module's environment (TPM2_PKCS11_STORE, TPM2_PKCS11_TCTI, DBUS_SESSION_BUS_ADDRESS) from the
// token, as the systemd drop-in gives it.
#include "tests/support/agent_world.hpp"
#include "tests/support/http_load.hpp"
#include "tests/support/sandbox_process.hpp"

#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace mtls::test;
using namespace std::chrono_literals;
using nlohmann::json;

AgentSetup tpm_setup(const std::string& key_type) {
    AgentSetup s;
    s.tpm = true;
    s.key_type = key_type;
    return s;
}

class TpmAgent : public ::testing::TestWithParam<std::string> {};

TEST_P(TpmAgent, EnrollsGetsABoundTokenAndProxies) {
    // The sandbox's default csrattrs ask for EC P-256; for RSA it asks for nothing.
    std::vector<std::string> flags;
    if (GetParam() != "ec-p256") flags = {"--est-csrattrs", "none"};
    AgentWorld w("tpm-agent", flags, tpm_setup(GetParam()));
    ASSERT_TRUE(w.token.is_tpm());
    w.agent->start();
    const auto st = w.agent->wait_healthy(120s);
    ASSERT_TRUE(st["identity"].is_object()) << st.dump();
    EXPECT_EQ(w.sandbox->stats()["est_enrolls"], 1) << w.sandbox->stats();

    // The key is the TPM token's: one private key, the state's current one.
    const auto keys = w.token_keys();
    ASSERT_EQ(keys.size(), 1u);
    EXPECT_EQ(referenced_keys(w.state()), keys);

    // One proxied call: the partner saw this certificate and a token bound to it.
    const auto answer = w.call();
    ASSERT_TRUE(answer.is_object()) << w.agent->log();
    EXPECT_EQ(bound_answer(200, answer.dump()), "") << answer.dump();
    const auto before = expect_consistent(w, 60s);

    // A restart: tpm2-pkcs11 numbers its objects anew in the new process; the agent finds
    // its key by CKA_ID and goes on with the same key and certificate, no new enrollment.
    EXPECT_EQ(w.agent->stop(), 0);
    w.agent->start();
    const auto after = w.agent->wait_healthy(120s);
    EXPECT_EQ(after["identity"]["key_id"], before["identity"]["key_id"]);
    EXPECT_EQ(after["identity"]["serial"], before["identity"]["serial"]);
    EXPECT_EQ(w.sandbox->stats()["est_enrolls"], 1) << w.sandbox->stats();
    expect_consistent(w, 60s);
}

INSTANTIATE_TEST_SUITE_P(KeyTypes, TpmAgent, ::testing::Values("ec-p256", "rsa-2048"),
                         [](const auto& p) {
                             return p.param == "ec-p256" ? "ec_p256" : "rsa_2048";
                         });

TEST(TpmAgentLoad, RotationUnderLoadLosesNothing) {
    AgentSetup setup = tpm_setup("ec-p256");
    setup.key = "retire_grace = \"2s\"\n";
    AgentWorld w("tpm-rotation", {"--threads", "2"}, setup);
    w.agent->start();
    w.agent->wait_healthy(120s);

    HttpLoad load(w.agent->port(), "/partner/api/secure/data", 8, bound_answer);
    auto traffic_grows = [&](std::uint64_t by) {
        const auto from = load.ok_so_far();
        return poll_until([&] { return load.ok_so_far() >= from + by; }, 60s);
    };
    EXPECT_TRUE(traffic_grows(20)) << "no traffic through the proxy";
    constexpr int kRotations = 3;
    int done = 0;
    for (int i = 0; i < kRotations; ++i) {
        auto r = w.agent->ctl({"rotate", "--wait"}, 120s);
        EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
        if (r.exit_code == 0) ++done;
        EXPECT_TRUE(traffic_grows(20)) << "traffic stopped after rotation " << i + 1
                                       << "; the agent's log without its requests:\n"
                                       << w.agent->events();
    }
    const auto report = load.stop();
    std::printf(
        "[ figures  ] tpm: %llu sent, %llu ok, %llu failed, %llu reconnects; %d rotations\n",
        static_cast<unsigned long long>(report.sent), static_cast<unsigned long long>(report.ok),
        static_cast<unsigned long long>(report.failed),
        static_cast<unsigned long long>(report.reconnects), done);
    EXPECT_EQ(done, kRotations);
    EXPECT_EQ(report.failed, 0u) << [&] {
        std::string s;
        for (const auto& f : report.samples) s += "  " + f + "\n";
        return s;
    }();
    const auto stats = w.sandbox->stats();
    EXPECT_EQ(stats["bound_mismatch"], 0) << stats;
    EXPECT_EQ(stats["token_invalid"], 0) << stats;
    EXPECT_TRUE(poll_until([&] { return w.token_keys().size() == 1; }, 60s, 100ms))
        << w.token_keys().size() << " keys left";
    expect_consistent(w, 60s);
}

}  // namespace

// tpm2-pkcs11 says only CKR_GENERAL_ERROR when it cannot reach the TPM. With the broker's bus
// gone, the agent's error names the TCTI in use and what to start.
TEST(TpmAgentErrors, NamesTheTctiWhenTheBrokerCannotBeReached) {
    AgentWorld w("tpm-no-broker", {}, tpm_setup("ec-p256"));
    w.agent->start({{"DBUS_SESSION_BUS_ADDRESS", "unix:path=" + (w.dir / "no-bus").string()}});
    const bool said = poll_until(
        [&] {
            const auto log = w.agent->log();
            return log.find("TPM2_PKCS11_TCTI=tabrmd:bus_type=session") != std::string::npos &&
                   log.find("tpm2-abrmd runs") != std::string::npos;
        },
        30s, 50ms);
    EXPECT_TRUE(said) << w.agent->log();
    // It gives up (the token is required) and exits with an error, without hanging.
    const auto code = w.agent->wait_exit(60s);
    ASSERT_TRUE(code.has_value()) << "the agent did not exit";
    EXPECT_NE(*code, 0);
    EXPECT_EQ(w.agent->log().find(w.token.read_pin()), std::string::npos);
}

// A token that refuses to destroy a retired key (here: tpm2-pkcs11 finds its SQLite store
// locked by another process) is asked again after 2 s, then 4, 8, … up to 5 min — not on every
// turn of the renewer's loop, which used to call C_DestroyObject and log
// renewal.retire_failed hundreds of times a second.
TEST(TpmAgentRetire, AFailedRetirementIsRetriedWithBackoffNotInALoop) {
    AgentSetup setup = tpm_setup("ec-p256");
    setup.key = "retire_grace = \"3s\"\n";
    AgentWorld w("tpm-retire", {}, setup);
    w.agent->start();
    w.agent->wait_healthy(120s);
    auto r = w.agent->ctl({"rotate", "--wait"}, 120s);
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;

    // Before the old key's grace period ends, another process takes the store's write lock
    // and keeps it (tpm2_ptool is Python, so python3 is there wherever this test runs).
    const auto store = w.token.env.at("TPM2_PKCS11_STORE") + "/tpm2_pkcs11.sqlite3";
    ChildProcess locker({"python3", "-c",
                         "import sqlite3, sys, time\n"
                         "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
                         "c.execute('BEGIN EXCLUSIVE')\n"
                         "print('locked', flush=True)\n"
                         "time.sleep(600)\n",
                         store},
                        w.dir.path() / "locker.log");
    ASSERT_TRUE(
        poll_until([&] { return locker.log().find("locked") != std::string::npos; }, 30s, 20ms))
        << locker.log();

    // The lines of renewal.retire_failed, and when each was logged (its ts=).
    struct Failure {
        std::string line;
        std::chrono::system_clock::time_point at;
    };
    auto failures = [&] {
        std::vector<Failure> out;
        std::istringstream log(w.agent->log());
        for (std::string line; std::getline(log, line);) {
            if (line.find(" event=renewal.retire_failed ") == std::string::npos) continue;
            const auto ts = line.find("ts=") + 3;
            out.push_back({line, parse_utc(line.substr(ts, line.find(' ', ts) - ts))});
        }
        return out;
    };
    // The interval under test: the second attempt comes ~2 s after the first and says the
    // next is in 4 s (a loop would have logged thousands of failures in that time).
    ASSERT_TRUE(poll_until([&] { return failures().size() >= 2; }, 60s, 50ms)) << w.agent->log();
    const auto seen = failures();
    EXPECT_NE(seen[0].line.find("retry_in_s=2"), std::string::npos) << seen[0].line;
    EXPECT_NE(seen[1].line.find("retry_in_s=4"), std::string::npos) << seen[1].line;
    EXPECT_GE(seen[1].at - seen[0].at, 1900ms) << w.agent->events();

    // The lock goes: the next attempt destroys the key.
    locker.stop();
    EXPECT_TRUE(poll_until(
        [&] { return w.agent->log().find("event=renewal.key_retired") != std::string::npos; }, 30s,
        50ms))
        << w.agent->log();
}
