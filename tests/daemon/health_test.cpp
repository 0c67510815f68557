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

TEST(Health, TokenProfilesNotYetRequestedAreNotAProblem) {
    auto in = base();
    TokenProfileFacts t;
    t.profile = "partner-a";
    in.tokens.push_back(t);
    auto s = build_status(in);
    EXPECT_EQ(s["state"], "healthy");
    EXPECT_EQ(s["tokens"][0]["state"], "not yet requested");
    in.tokens[0].state = "failed";
    in.tokens[0].last_error = "as_unreachable: cannot connect to the AS";
    s = build_status(in);
    EXPECT_EQ(s["state"], "degraded");
    EXPECT_EQ(s["reasons"][0],
              "access token for partner-a: as_unreachable: cannot connect to the AS");
}

TEST(Health, ARouteFailingInARowIsDegradedAndNamed) {
    auto in = base();
    RouteFacts r;
    r.name = "partner-b";
    r.requests = 5;
    r.status_2xx = 3;
    r.proxy_errors = 2;
    r.consecutive_failures = kRouteFailuresForDegraded - 1;
    r.last_failure = "upstream_connect";
    r.last_failure_status = 502;
    r.last_failure_at = in.now - 5s;
    in.routes.push_back(r);
    auto s = build_status(in);
    EXPECT_EQ(s["state"], "healthy") << "below the threshold";
    EXPECT_EQ(s["routes"][0]["state"], "healthy");
    EXPECT_EQ(s["routes"][0]["last_error"]["error"], "upstream_connect");
    in.routes[0].consecutive_failures = kRouteFailuresForDegraded;
    s = build_status(in);
    EXPECT_EQ(s["state"], "degraded");
    EXPECT_EQ(s["routes"][0]["state"], "degraded");
    EXPECT_EQ(s["reasons"][0],
              "route partner-b: the last 3 requests failed (last error: upstream_connect, status "
              "502 at 2023-11-14T22:13:15Z)");
    EXPECT_EQ(s["routes"][0]["consecutive_failures"], 3);
    // The counts add up: partner answers by class + proxy-made errors + unanswered.
    const auto& j = s["routes"][0];
    std::uint64_t sum =
        j["proxy_errors"].get<std::uint64_t>() + j["no_response"].get<std::uint64_t>();
    for (const auto& [k, v] : j["responses"].items()) sum += v.get<std::uint64_t>();
    EXPECT_EQ(sum, j["requests"].get<std::uint64_t>());
    EXPECT_EQ(health_level(s), 1);
}

TEST(Health, LevelOfAStatus) {
    EXPECT_EQ(health_level(build_status(base())), 0);
    auto in = base();
    in.identity.reset();
    EXPECT_EQ(health_level(build_status(in)), 2);
    EXPECT_EQ(health_level(nlohmann::json::object()), 2) << "unknown is failing";
}
