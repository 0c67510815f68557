// SIGKILL at random moments, 50 times, while the agent renews short-lived certificates on
// its own schedule and rotations are requested continuously. After each kill identity.json
// parses and at most one key on the token is not referenced by it; after each restart the
// agent is healthy with a valid identity, that key is gone, and the token holds exactly the
// keys the state references. Every object of the agent's instance (public keys and
// half-generated ones included) that a kill left unreferenced is gone after the restart.
#include "tests/e2e/figures.hpp"
#include "tests/support/agent_world.hpp"
#include "tests/support/token_objects.hpp"

#include "common/atomic_file.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <random>
#include <thread>

namespace {

using namespace mtls::test;
using namespace mtls::test::e2e;
using namespace std::chrono_literals;
using nlohmann::json;

TEST(E2E, SigkillAtRandomMomentsAlwaysComesBack) {
    const int kills = env_count("MTLS_E2E_KILLS", 50);
    AgentSetup setup;
    // 30 s certificates renewed after 4.5–7.5 s; retired keys destroyed after 5 s (the grace
    // must outlast a request that started with the old key, even under ASan).
    setup.renewal =
        "at_fraction = 0.2\njitter = 0.05\nbackoff_initial = \"1s\"\nbackoff_max = \"2s\"\n";
    setup.key = "retire_grace = \"5s\"\n";
    AgentWorld w("e2e-kill", {"--cert-validity", "30"}, setup);

    // Rotations requested all the time (refused while the agent is down: that is fine).
    std::atomic<bool> stop{false};
    std::atomic<int> requested{0};
    std::thread rotator([&] {
        while (!stop) {
            if (w.agent->ctl({"rotate"}, 5s).exit_code == 0) ++requested;
            std::this_thread::sleep_for(150ms);  // request rate, not a readiness wait
        }
    });
    struct Join {
        std::atomic<bool>& stop;
        std::thread& t;
        ~Join() {
            stop = true;
            t.join();
        }
    } join{stop, rotator};

    std::mt19937 rng(std::random_device{}());
    std::uniform_int_distribution<int> moment_ms(0, 1500);
    std::vector<std::string> left_behind;   // unreferenced after the last kill
    std::vector<std::string> objects_left;  // ids of any object of the instance, likewise
    auto instance_objects = [&] {
        auto text = mtls::files::read_all(w.agent->dir() / "state" / "instance", 1024);
        std::vector<std::string> ids;
        for (const auto& o : token_objects_with_id(w.token, text.substr(0, 16)))
            ids.push_back(o.id_hex);
        return ids;
    };
    int max_unreferenced = 0;
    for (int i = 0; i <= kills; ++i) {
        SCOPED_TRACE("restart " + std::to_string(i));
        w.agent->start();
        json st;
        try {
            st = w.agent->wait_healthy(90s);
        } catch (const std::exception& e) {
            FAIL() << e.what();
        }
        if (i > 0) ++figures().restarts;
        // Renewals and rotations go on, so this is not a quiet moment: the identity is valid,
        // the state parses and names it, at most the key of a renewal in progress is not
        // referenced, the key the last kill left behind is gone, and the proxy works.
        EXPECT_GT(st["identity"]["seconds_left"].get<long long>(), 0) << st;
        mtls::renewal::State now;
        ASSERT_NO_THROW(now = w.state()) << "identity.json after restart " << i;
        const auto refs = referenced_keys(now);
        EXPECT_EQ(std::count(refs.begin(), refs.end(), st["identity"]["key_id"]), 1) << st;
        // The token and the state read while the state stayed the same: rotations go on, and
        // two may complete between reading the file and listing the token (seen under ASan).
        std::vector<std::string> keys;
        poll_until(
            [&] {
                const auto before = mtls::renewal::serialize_state(w.state());
                keys = w.token_keys();
                now = w.state();
                return mtls::renewal::serialize_state(now) == before;
            },
            10s, 20ms);  // each reading opens the token
        EXPECT_LE(unreferenced_keys(keys, now).size(), 1u) << mtls::renewal::serialize_state(now);
        for (const auto& k : left_behind)
            EXPECT_EQ(std::count(keys.begin(), keys.end(), k), 0)
                << "key " << k << " left by the last kill is still on the token; state "
                << mtls::renewal::serialize_state(now) << "\nlog:\n"
                << w.agent->log();
        {
            const auto objects = instance_objects();
            for (const auto& k : objects_left)
                EXPECT_EQ(std::count(objects.begin(), objects.end(), k), 0)
                    << "an object with id " << k << " left by the last kill is still on the token";
        }
        auto answer = w.call();
        EXPECT_EQ(bound_answer(answer.is_object() ? 200 : 0, answer.dump()), "")
            << answer << "\nthe agent's log without its requests:\n"
            << w.agent->events();
        if (::testing::Test::HasFailure()) break;
        if (i == kills) break;

        // Let it work (renewals, rotations, retirements) for a random moment, then kill it.
        std::this_thread::sleep_for(std::chrono::milliseconds(moment_ms(rng)));
        EXPECT_EQ(w.agent->kill9(), 128 + 9);
        ++figures().kills;
        mtls::renewal::State state;
        ASSERT_NO_THROW(state = w.state()) << "identity.json after kill " << i + 1;
        left_behind = unreferenced_keys(w.token_keys(), state);
        objects_left.clear();
        const auto refs_now = referenced_keys(state);
        for (const auto& id : instance_objects())
            if (std::count(refs_now.begin(), refs_now.end(), id) == 0) objects_left.push_back(id);
        max_unreferenced = std::max(max_unreferenced, static_cast<int>(left_behind.size()));
        EXPECT_LE(left_behind.size(), 1u) << "after kill " << i + 1;
    }
    // Quiet at last: no more rotations; everything agrees exactly.
    stop = true;
    expect_consistent(w);
    const auto sb = w.sandbox->stats();
    std::printf(
        "[ figures  ] %d kills; %d rotations requested; EST enrolls %d, reenrolls %d; "
        "at most %d unreferenced key(s) after a kill\n",
        kills, requested.load(), sb["est_enrolls"].get<int>(), sb["est_reenrolls"].get<int>(),
        max_unreferenced);
}

}  // namespace
