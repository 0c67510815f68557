// Rotation under load: 32 keep-alive client connections through the agent's proxy while the
// key is rotated 20 times with `mtls-agentctl rotate --wait` and the 60-second certificate
// renews by itself in between. Not one request may fail, and every answer must say that the
// partner saw a valid token bound to the certificate of its own connection.
#include "tests/e2e/figures.hpp"
#include "tests/support/agent_world.hpp"
#include "tests/support/http_load.hpp"

#include <gtest/gtest.h>

#include <thread>

namespace {

using namespace mtls::test;
using namespace mtls::test::e2e;
using namespace std::chrono_literals;
using nlohmann::json;

TEST(E2E, RotationUnderLoadLosesNothing) {
    const int connections = env_count("MTLS_E2E_CONNECTIONS", 32);
    const int rotations = env_count("MTLS_E2E_ROTATIONS", 20);
    AgentSetup setup;
    // 60 s certificates renewed at 30 % ± 5 % of their life: 15–21 s after the last switch.
    setup.renewal = "at_fraction = 0.3\njitter = 0.05\n";
    setup.key = "retire_grace = \"5s\"\n";
    AgentWorld w("e2e-rotation", {"--cert-validity", "60", "--threads", "2"}, setup);
    w.agent->start();
    w.agent->wait_healthy(60s);

    HttpLoad load(w.agent->port(), "/partner/api/secure/data", connections, bound_answer);
    auto traffic_grows = [&](std::uint64_t by) {
        const auto from = load.ok_so_far();
        return poll_until([&] { return load.ok_so_far() >= from + by; }, 60s);
    };
    EXPECT_TRUE(traffic_grows(100)) << "no traffic through the proxy";

    int done = 0;
    auto rotate = [&](int n) {
        for (int i = 0; i < n; ++i) {
            auto r = w.agent->ctl({"rotate", "--wait"});
            EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
            if (r.exit_code == 0) ++done;
        }
    };
    // Half the rotations, then the scheduled renewal (the sandbox counts every
    // simplereenroll: one more than our rotations is the agent's own), then the rest.
    rotate(rotations / 2);
    const auto serial = w.agent->status().value()["identity"]["serial"];
    const bool renewed =
        poll_until([&] { return w.sandbox->stats()["est_reenrolls"].get<int>() > done; }, 60s);
    EXPECT_TRUE(renewed) << "no scheduled renewal within 60 s";
    EXPECT_TRUE(w.agent->wait_status(
                    [&](const json& s) {
                        return s["identity"].is_object() && s["identity"]["serial"] != serial;
                    },
                    30s, "the renewed certificate in status")["renewal"]["last_result"] == "ok");
    rotate(rotations - rotations / 2);
    EXPECT_TRUE(traffic_grows(100)) << "traffic stopped after the rotations";
    const auto report = load.stop();
    figures().add(report);
    figures().rotations += static_cast<std::uint64_t>(done);
    const int reenrolls = w.sandbox->stats()["est_reenrolls"].get<int>();
    figures().renewals += static_cast<std::uint64_t>(std::max(0, reenrolls - done));

    std::printf(
        "[ figures  ] %d connections: %llu sent, %llu ok, %llu failed, %llu reconnects; "
        "%d rotations, %d scheduled renewal(s)\n",
        connections, static_cast<unsigned long long>(report.sent),
        static_cast<unsigned long long>(report.ok), static_cast<unsigned long long>(report.failed),
        static_cast<unsigned long long>(report.reconnects), done, reenrolls - done);
    EXPECT_EQ(done, rotations);
    EXPECT_GE(reenrolls - done, 1) << "the certificate never renewed by itself";
    EXPECT_EQ(report.failed, 0u) << "first failures:\n"
                                 << [&] {
                                        std::string s;
                                        for (const auto& f : report.samples) s += "  " + f + "\n";
                                        return s;
                                    }();
    EXPECT_GE(report.ok, 200u);

    // The partner's view: every API request carried a valid token bound to its connection.
    const auto stats = w.sandbox->stats();
    EXPECT_EQ(stats["bound_mismatch"], 0) << stats;
    EXPECT_EQ(stats["token_invalid"], 0) << stats;
    EXPECT_EQ(stats["token_missing"], 0) << stats;
    EXPECT_GE(stats["bound_ok"].get<std::uint64_t>(), report.ok) << stats;

    // Afterwards the retired keys go; identity.json and the token agree.
    EXPECT_TRUE(poll_until([&] { return w.token_keys().size() == 1; }, 30s))
        << w.token_keys().size() << " keys left";
    w.agent->wait_healthy(30s);
    expect_consistent(w);
}

}  // namespace
