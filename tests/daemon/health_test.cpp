#include "agent/daemon/health.hpp"

#include <gtest/gtest.h>

using namespace mtls::daemon;
using namespace std::chrono_literals;

namespace {
StatusInputs base() {
    StatusInputs in;
    in.now = Clock::time_point(1'700'000'000s);
    in.token_present = in.token_logged_in = true;
    IdentityFacts f;
    f.cn = "host";
    f.not_before = in.now - 100s;
    f.not_after = in.now + 900s;  // lifetime 1000 s
    in.identity = f;
    in.renewal.last_result = "ok";
    return in;
}
}  // namespace

TEST(Health, HealthyWithAValidCertificate) {
    auto s = build_status(base());
    EXPECT_EQ(s["state"], "healthy");
    EXPECT_EQ(s["identity"]["seconds_left"], 900);
    EXPECT_EQ(s["identity"]["not_after"], "2023-11-14T22:28:20Z");
}

TEST(Health, FailingWithoutIdentityOrWhenExpired) {
    auto in = base();
    in.identity.reset();
    in.renewal.last_result = "EST enroll failed: server said 401";
    auto s = build_status(in);
    EXPECT_EQ(s["state"], "failing");
    EXPECT_EQ(s["reasons"][0],
              "no client certificate: enrollment has not succeeded (last attempt: EST enroll "
              "failed: server said 401)");
    in = base();
    in.identity->not_after = in.now - 1s;
    EXPECT_EQ(build_status(in)["state"], "failing");
}

TEST(Health, RenewalFailureDegradesThenFailsNearExpiry) {
    auto in = base();
    in.renewal.consecutive_failures = 2;
    in.renewal.last_result = "EST simplereenroll failed: connection refused";
    EXPECT_EQ(build_status(in)["state"], "degraded");
    in.identity->not_after = in.now + 90s;    // last 10 % (100 s) of a 1000 s... lifetime now 190 s
    in.identity->not_before = in.now - 900s;  // lifetime 990 s, last part 99 s
    EXPECT_EQ(build_status(in)["state"], "failing");
}

TEST(Health, TokenProblems) {
    auto in = base();
    in.token_present = false;
    EXPECT_EQ(build_status(in)["state"], "failing");
    in = base();
    in.tokens.push_back({"partner-a", std::nullopt, "AS unreachable"});
    auto s = build_status(in);
    EXPECT_EQ(s["state"], "degraded");
    EXPECT_EQ(s["reasons"][0], "access token for partner-a: AS unreachable");
}

TEST(Health, FailingWhileTheCurrentKeyIsMissingOnTheToken) {
    auto in = base();
    in.renewal.key_problem = "the current key is missing on the token";
    auto s = build_status(in);
    EXPECT_EQ(s["state"], "failing");
    EXPECT_EQ(s["reasons"][0], "the current key is missing on the token");
    in.identity.reset();  // dropped while a new key is enrolled: the key's reason comes first
    s = build_status(in);
    EXPECT_EQ(s["state"], "failing");
    EXPECT_EQ(s["reasons"][0], "the current key is missing on the token");
}
