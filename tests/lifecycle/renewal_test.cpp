// Scheduled renewal of a 60-second certificate by the real agent: it happens when the
// schedule says, with a new key and a new serial; the old key is destroyed after the grace
// period; identity.json and the token agree at every step.
#include "tests/support/agent_world.hpp"

#include <gtest/gtest.h>

namespace {

using namespace mtls::test;
using namespace std::chrono_literals;
using nlohmann::json;

TEST(LifecycleRenewal, RenewsOnScheduleRekeysAndRetiresTheOldKey) {
    AgentSetup setup;
    // 60 s certificates renewed at 30 % ± 5 % of their life: after 15–21 s.
    setup.renewal = "at_fraction = 0.3\njitter = 0.05\n";
    setup.key = "retire_grace = \"3s\"\n";
    AgentWorld w("renewal", {"--cert-validity", "60"}, setup);
    w.agent->start();
    const auto first = w.agent->wait_healthy(60s);
    expect_consistent(w);
    const auto& id1 = first["identity"];
    const auto key1 = id1["key_id"].get<std::string>();
    const auto serial1 = id1["serial"].get<std::string>();
    const auto nb1 = parse_utc(id1["not_before"]), na1 = parse_utc(id1["not_after"]);
    EXPECT_EQ(na1 - nb1, 60s);
    EXPECT_EQ(w.token_keys(), std::vector<std::string>{key1});
    EXPECT_TRUE(w.state().retiring.empty());

    // The schedule: at_fraction ± jitter of the lifetime (status prints whole seconds).
    const auto next = parse_utc(first["renewal"]["next_at"]);
    EXPECT_GE(next, nb1 + 15s - 1s) << first["renewal"];
    EXPECT_LE(next, nb1 + 21s + 1s) << first["renewal"];

    // The agent renews by itself.
    const auto second = w.agent->wait_status(
        [&](const json& s) {
            return s["identity"].is_object() && s["identity"]["serial"] != serial1;
        },
        90s, "the scheduled renewal");
    const auto& id2 = second["identity"];
    const auto key2 = id2["key_id"].get<std::string>();
    EXPECT_NE(key2, key1) << "rekey_on_renew defaults to true";
    const auto nb2 = parse_utc(id2["not_before"]);
    EXPECT_GE(nb2, next - 1s) << "renewed before its time";
    EXPECT_LT(nb2, na1) << "renewed only after the old certificate expired";
    EXPECT_EQ(second["state"], "healthy") << second;
    EXPECT_EQ(second["renewal"]["last_result"], "ok");

    // Right after the switch: the new key is current, the old one retiring (or, on a slow
    // machine, already gone) — and the token holds exactly what the state references.
    auto snap = consistent_snapshot(w);
    ASSERT_TRUE(snap.state.current_key);
    EXPECT_EQ(snap.state.current_key->id_hex, key2);
    EXPECT_EQ(snap.keys, referenced_keys(snap.state));
    for (const auto& r : snap.state.retiring) EXPECT_EQ(r.key.id_hex, key1);

    // After the grace period the old key is destroyed and the state says so.
    EXPECT_TRUE(poll_until(
        [&] {
            auto s = consistent_snapshot(w);
            return s.state.retiring.empty() && s.keys == std::vector<std::string>{key2};
        },
        30s))
        << "old key still there: " << mtls::renewal::serialize_state(w.state()) << "\n"
        << w.agent->log();
    // The proxy uses the new certificate with a token bound to it.
    expect_consistent(w);
    EXPECT_GE(w.sandbox->stats()["est_reenrolls"].get<int>(), 1);
}

}  // namespace
