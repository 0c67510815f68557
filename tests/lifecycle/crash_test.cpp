// Crash safety: the real agent kills itself (SIGKILL, MTLS_AGENT_TEST_CRASH_AT) right after
// each step of a first enrollment, of a rekeying renewal, of a key retirement and of its own
// start-up; restarted without the crash point it must come up healthy with a valid
// identity, an identity.json that parses, and exactly the keys on the token that the state
// references — no orphan, no missing key.
#include "tests/support/agent_world.hpp"

#include <gtest/gtest.h>

namespace {

using namespace mtls::test;
using namespace std::chrono_literals;
using nlohmann::json;

enum class Trigger {
    first_start,  // the crash point is set for the very first start (enrollment)
    rotation,     // enrolled and healthy, then `rotate --wait`
    retirement,   // rotation with a short grace: dies when the old key is destroyed
    restart,      // enrolled, stopped, then started with the crash point
};

struct CrashCase {
    const char* at;  // MTLS_AGENT_TEST_CRASH_AT
    Trigger trigger;
    // For `restart`: a rotation crashed here first, leaving work for the start-up.
    const char* after_rotation_crash_at = nullptr;
};
void PrintTo(const CrashCase& c, std::ostream* os) {
    *os << c.at;
}

std::string case_name(const ::testing::TestParamInfo<CrashCase>& info) {
    std::string n = info.param.at;
    for (auto& c : n)
        if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
    return n;
}

class CrashSafety : public ::testing::TestWithParam<CrashCase> {
  protected:
    // The retirement case dies when the old key is destroyed, retire_grace after the rotation
    // was published; `rotate --wait` must answer before that (it also fetches every profile's
    // token first), so its grace leaves room for a slow, sanitized build on a loaded machine.
    static AgentSetup setup(Trigger t) {
        AgentSetup s;
        s.key = t == Trigger::retirement ? "retire_grace = \"4s\"\n" : "retire_grace = \"1s\"\n";
        return s;
    }
    std::map<std::string, std::string> crash_env() const { return {{kVar, GetParam().at}}; }
    // Waits for the agent to die from its crash point (exit 128 + SIGKILL).
    void expect_crashed(std::chrono::milliseconds deadline = 60s) {
        auto rc = w_.agent->wait_exit(deadline);
        ASSERT_TRUE(rc.has_value())
            << "the agent did not reach crash point " << GetParam().at << "; log:\n"
            << w_.agent->log();
        EXPECT_EQ(*rc, 128 + 9) << w_.agent->log();
        EXPECT_NE(w_.agent->log().find("renewal.test_crash_point"), std::string::npos);
    }
    void enroll_cleanly() {
        w_.agent->start();
        before_ = w_.agent->wait_healthy(60s);
    }

    static constexpr const char* kVar = "MTLS_AGENT_TEST_CRASH_AT";
    AgentWorld w_{"crash", {}, setup(GetParam().trigger)};
    json before_;
};

TEST_P(CrashSafety, RestartFindsAValidIdentityAndNoOrphanKey) {
    switch (GetParam().trigger) {
        case Trigger::first_start:
            w_.agent->start(crash_env());
            expect_crashed();
            break;
        case Trigger::rotation:
        case Trigger::retirement: {
            enroll_cleanly();
            ASSERT_EQ(w_.agent->stop(), 0);
            w_.agent->start(crash_env());
            before_ = w_.agent->wait_healthy(60s);
            auto r = w_.agent->ctl({"rotate", "--wait"});
            if (GetParam().trigger == Trigger::retirement) {
                EXPECT_EQ(r.exit_code, 0) << r.err;
            }
            expect_crashed();
            break;
        }
        case Trigger::restart:
            enroll_cleanly();
            ASSERT_EQ(w_.agent->stop(), 0);
            if (const char* first = GetParam().after_rotation_crash_at) {
                w_.agent->start({{kVar, first}});
                w_.agent->wait_healthy(60s);
                w_.agent->ctl({"rotate", "--wait"});
                expect_crashed();
                if (::testing::Test::HasFatalFailure()) return;
                EXPECT_LE(unreferenced_keys(w_.token_keys(), w_.state()).size(), 1u);
            }
            w_.agent->start(crash_env());
            expect_crashed();
            break;
    }
    if (::testing::Test::HasFatalFailure()) return;

    // What the crash left: identity.json (if any) parses; at most one key is unreferenced.
    if (std::filesystem::exists(w_.agent->state_file())) {
        mtls::renewal::State left;
        ASSERT_NO_THROW(left = w_.state());
        EXPECT_LE(unreferenced_keys(w_.token_keys(), left).size(), 1u);
    }

    // Restart without the crash point.
    w_.agent->start();
    auto after = w_.agent->wait_healthy(60s);
    expect_consistent(w_);
    EXPECT_TRUE(unreferenced_keys(w_.token_keys(), w_.state()).empty());
    if (before_.is_object()) {
        // The identity is the old one or the new one, never something else; the subject stays.
        EXPECT_EQ(after["identity"]["subject"], before_["identity"]["subject"]);
    }
    // And it still works as a whole: one more rotation succeeds.
    auto r = w_.agent->ctl({"rotate", "--wait"});
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_NE(w_.agent->status().value()["identity"]["key_id"], after["identity"]["key_id"]);
}

INSTANTIATE_TEST_SUITE_P(
    Steps, CrashSafety,
    ::testing::Values(
        // First enrollment (renewer.cpp enroll_fresh).
        CrashCase{"enroll:cacerts", Trigger::first_start},
        // The key's CKA_ID recorded as state.pending_key, the key not yet generated.
        CrashCase{"enroll:key_intent", Trigger::first_start},
        CrashCase{"enroll:generate_key", Trigger::first_start},
        CrashCase{"enroll:enroll", Trigger::first_start},
        CrashCase{"enroll:verify", Trigger::first_start},
        CrashCase{"enroll:persist", Trigger::first_start},
        CrashCase{"enroll:publish", Trigger::first_start},
        // A rekeying renewal (renew_with), as `rotate` runs it.
        CrashCase{"renew:key_intent", Trigger::rotation},
        CrashCase{"renew:generate_key", Trigger::rotation},
        CrashCase{"renew:enroll", Trigger::rotation}, CrashCase{"renew:verify", Trigger::rotation},
        CrashCase{"renew:persist", Trigger::rotation},
        CrashCase{"renew:publish", Trigger::rotation},
        CrashCase{"renew:retire_old_key", Trigger::rotation},
        // The old key destroyed, the state not yet saved (retire_due).
        CrashCase{"retire:destroy_key", Trigger::retirement},
        // Start-up (start_up): after reading the state, after destroying the orphan a crashed
        // rotation left, after saving a state that forgets a key the token no longer has (a
        // crashed retirement), after publishing the persisted identity.
        CrashCase{"startup:load_state", Trigger::restart},
        CrashCase{"startup:destroy_orphan", Trigger::restart, "renew:generate_key"},
        CrashCase{"startup:save_reconciled_state", Trigger::restart, "retire:destroy_key"},
        CrashCase{"startup:publish", Trigger::restart}),
    case_name);

}  // namespace
