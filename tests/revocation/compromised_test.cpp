// `mtls-agentctl rotate --compromised` (issue #19) with the real agent, a SoftHSM2 token and
// the partner sandbox: under load, the old key is gone from the token when the command
// returns, the partner sees no request with the old certificate after that (it counts every
// API request by the connection's certificate as it arrives: api_requests_by_cert), a
// request in flight on the old identity is cut instead of succeeding, and the new identity
// serves. Without bootstrap credentials the command fails saying what to configure, and the
// old key is gone all the same. A crash at every step of the compromised order restarts
// cleanly, never with the burnt key.
#include "common/atomic_file.hpp"
#include "tests/support/agent_world.hpp"
#include "tests/support/http_load.hpp"
#include "tests/support/token_objects.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <future>

namespace {

using namespace mtls::test;
using namespace std::chrono_literals;
using nlohmann::json;

// The load's check during a compromised rotation: a bound answer, or the agent's own
// 502/503 while it has no identity (identity_compromised) or a request was cut.
std::string bound_or_refused(unsigned status, const std::string& body) {
    if (status == 502 || status == 503) return "";
    return bound_answer(status, body);
}

// GET through the proxy with curl: "<status>" or "curl exit N".
std::string fetch_status(const AgentProcess& agent, const std::string& path) {
    auto r = run_command({"curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", agent.url(path)},
                         "", 60s);
    return r.exit_code == 0 ? r.out : "curl exit " + std::to_string(r.exit_code);
}

// A request the partner holds for 30 s, once it has reached the partner (invalid when it did
// not within 30 s): "<status>" or "curl exit N".
std::future<std::string> slow_request_in_flight(const AgentWorld& w) {
    const auto echo_before = w.sandbox->stats()["echo_requests"].get<std::uint64_t>();
    auto slow =
        std::async(std::launch::async, [&] { return fetch_status(*w.agent, "echo/slow/30000"); });
    if (!poll_until(
            [&] { return w.sandbox->stats()["echo_requests"].get<std::uint64_t>() > echo_before; },
            30s, 20ms))
        return {};
    return slow;
}

struct OldIdentity {
    std::string x5t, key_id, serial;
};

OldIdentity identity_of(const json& status) {
    return {status["identity"]["thumbprint_sha256"].get<std::string>(),
            status["identity"]["key_id"].get<std::string>(),
            status["identity"]["serial"].get<std::string>()};
}

TEST(Compromised, RotateUnderLoadDropsTheOldKeyAtOnce) {
    AgentWorld w("rev-compromised");
    w.agent->start();
    const auto old = identity_of(w.agent->wait_healthy(60s));
    ASSERT_EQ(token_objects_with_id(w.token, old.key_id).size(), 2u) << "key pair on the token";

    HttpLoad load(w.agent->port(), "/partner/api/secure/data", 8, bound_or_refused);
    ASSERT_TRUE(poll_until([&] { return load.ok_so_far() >= 50; }, 60s)) << "no traffic";
    ASSERT_GT(w.sandbox->api_requests_with_cert(old.x5t), 0u);

    // A request in flight on the old identity: the partner holds it for 30 s.
    auto slow = slow_request_in_flight(w);
    ASSERT_TRUE(slow.valid()) << "the slow request never reached the partner";

    const auto t0 = std::chrono::steady_clock::now();
    auto r = w.agent->ctl({"rotate", "--compromised", "--wait"});
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err << w.agent->log();
    // When the command returns: the old key is gone, and the partner's count for the old
    // certificate is final.
    EXPECT_TRUE(token_objects_with_id(w.token, old.key_id).empty());
    const auto old_count = w.sandbox->api_requests_with_cert(old.x5t);

    // The request in flight was cut, not answered with the old certificate, and promptly.
    ASSERT_EQ(slow.wait_for(20s), std::future_status::ready) << "the slow request was not cut";
    const auto slow_status = slow.get();
    EXPECT_NE(slow_status, "200") << "a request on the burnt identity succeeded";
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 25s);

    // The new identity serves; the load goes on with it.
    auto now = w.agent->wait_healthy(60s);
    EXPECT_NE(now["identity"]["serial"], old.serial);
    EXPECT_NE(now["identity"]["key_id"], old.key_id);
    ASSERT_TRUE(now["renewal"]["last_compromise"].is_object()) << now.dump(2);
    EXPECT_EQ(now["renewal"]["last_compromise"]["trigger"], "operator");
    const auto ok_after = load.ok_so_far();
    EXPECT_TRUE(poll_until([&] { return load.ok_so_far() >= ok_after + 100; }, 60s))
        << "the load did not resume with the new identity";
    const auto report = load.stop();
    EXPECT_EQ(report.failed, 0u) << (report.samples.empty() ? "" : report.samples.front());

    // Not one request with the old certificate after the command returned.
    EXPECT_EQ(w.sandbox->api_requests_with_cert(old.x5t), old_count);
    const auto new_x5t = now["identity"]["thumbprint_sha256"].get<std::string>();
    EXPECT_GE(w.sandbox->api_requests_with_cert(new_x5t), 100u);
    // A fresh enrollment (bootstrap credentials), not a re-enrollment with the burnt cert.
    const auto stats = w.sandbox->stats();
    EXPECT_EQ(stats["est_enrolls"], 2) << stats.dump();
    EXPECT_EQ(stats["est_reenrolls"], 0) << stats.dump();
    expect_consistent(w);
    const auto state = w.state();
    ASSERT_TRUE(state.last_compromise.has_value());
    EXPECT_FALSE(state.last_compromise->destroy_key.has_value());
    EXPECT_NE(w.agent->log().find("renewal.compromised"), std::string::npos);
    EXPECT_NE(w.agent->log().find("proxy.identity_cut"), std::string::npos);
}

// A reload that changes the route retires its pool while a request is still on it (the
// request finishes on the table it started with); a compromise right after cuts that
// request too — the retired pool's connection was made with the burnt identity.
TEST(Compromised, CutsARequestStillOnAPoolAReloadRetired) {
    AgentWorld w("rev-compromised-retired");
    w.agent->start();
    w.agent->wait_healthy(60s);
    auto slow = slow_request_in_flight(w);
    ASSERT_TRUE(slow.valid()) << "the slow request never reached the partner";

    auto cfg = w.agent->config_text();
    const auto at = cfg.find("token_profile = \"partner\"\n");  // in the [[routes]] entry
    ASSERT_NE(at, std::string::npos) << cfg;
    cfg.insert(at, "pool_max = 7\n");
    w.agent->write_config(cfg);
    auto reload = w.agent->ctl({"reload", "--json"});
    ASSERT_EQ(reload.exit_code, 0) << reload.out << reload.err;
    EXPECT_EQ(json::parse(reload.out)["routes"]["changed"], json::array({"partner"})) << reload.out;

    auto r = w.agent->ctl({"rotate", "--compromised", "--wait"});
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err << w.agent->log();
    ASSERT_EQ(slow.wait_for(20s), std::future_status::ready)
        << "the request on the retired pool was not cut";
    EXPECT_NE(slow.get(), "200") << "a request on the burnt identity succeeded";
}

TEST(Compromised, WithoutWaitReturnsOnceTheOldKeyIsGone) {
    AgentWorld w("rev-compromised-nowait");
    w.agent->start();
    const auto old = identity_of(w.agent->wait_healthy(60s));
    auto r = w.agent->ctl({"rotate", "--compromised"});
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_NE(r.out.find("key is destroyed on the token"), std::string::npos) << r.out;
    EXPECT_TRUE(token_objects_with_id(w.token, old.key_id).empty()) << "the old key is left";
    const auto old_count = w.sandbox->api_requests_with_cert(old.x5t);
    auto now = w.agent->wait_healthy(60s);
    EXPECT_NE(now["identity"]["key_id"], old.key_id);
    EXPECT_EQ(w.call()["token"]["bound_to_this_certificate"], true);
    EXPECT_EQ(w.sandbox->api_requests_with_cert(old.x5t), old_count);
    expect_consistent(w);
}

TEST(Compromised, WithoutBootstrapCredentialsTheOldKeyIsStillNotUsed) {
    AgentSetup setup;
    setup.renewal = "backoff_initial = \"1s\"\nbackoff_max = \"2s\"\n";
    AgentWorld w("rev-nobootstrap", {}, setup);
    w.agent->start();
    const auto old = identity_of(w.agent->wait_healthy(60s));
    ASSERT_EQ(w.call()["token"]["bound_to_this_certificate"], true);

    // The enrollment secret was removed after the first enrollment, as some sites do.
    const auto creds = w.agent->dir() / "est-basic";
    const auto secret = mtls::files::read_all(creds.string(), 4096);
    std::filesystem::remove(creds);

    auto r = w.agent->ctl({"rotate", "--compromised", "--wait"});
    EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
    EXPECT_NE(r.err.find("no bootstrap credentials"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("est.basic_credentials"), std::string::npos) << r.err;
    EXPECT_TRUE(token_objects_with_id(w.token, old.key_id).empty()) << "the old key is left";
    const auto old_count = w.sandbox->api_requests_with_cert(old.x5t);

    // Requests are refused with a clear reason, never sent with the old certificate.
    auto res = run_command({"curl", "-s", "-w", "\n%{http_code}", w.agent->url("api/secure/data")});
    EXPECT_NE(res.out.find("identity_compromised"), std::string::npos) << res.out;
    EXPECT_NE(res.out.find("\n503"), std::string::npos) << res.out;
    auto st = w.agent->status().value();
    EXPECT_EQ(st["state"], "failing") << st.dump(2);
    EXPECT_NE(st["reasons"].dump().find("compromised"), std::string::npos) << st.dump(2);
    EXPECT_EQ(w.sandbox->api_requests_with_cert(old.x5t), old_count);

    // Put the credentials back: the agent enrolls by itself.
    mtls::files::write_atomic(creds.string(), secret, 0600);
    auto healthy = w.agent->wait_healthy(60s);
    EXPECT_NE(healthy["identity"]["key_id"], old.key_id);
    EXPECT_EQ(w.call()["token"]["bound_to_this_certificate"], true);
    EXPECT_EQ(w.sandbox->api_requests_with_cert(old.x5t), old_count);
    expect_consistent(w);
}

// A crash right after each step of the compromised order (MTLS_AGENT_TEST_CRASH_AT): the
// restart never publishes the burnt key, destroys it if it is still there, and enrolls anew.
// After "compromised:persist" the state is a first start's (no current key): the steps of
// that enrollment are tests/lifecycle/crash_test.cpp's "enroll:*" crash points.
class CompromisedCrash : public ::testing::TestWithParam<const char*> {};

TEST_P(CompromisedCrash, RestartNeverUsesTheBurntKey) {
    AgentWorld w("rev-crash");
    w.agent->start({{"MTLS_AGENT_TEST_CRASH_AT", GetParam()}});
    const auto old = identity_of(w.agent->wait_healthy(60s));
    w.agent->ctl({"rotate", "--compromised", "--wait"}, 60s);  // the agent dies on the way
    ASSERT_TRUE(w.agent->wait_exit(60s).has_value()) << "no crash at " << GetParam();
    EXPECT_NE(w.agent->log().find("renewal.test_crash_point"), std::string::npos);

    w.agent->start();
    auto after = w.agent->wait_healthy(60s);
    EXPECT_NE(after["identity"]["key_id"], old.key_id);
    EXPECT_NE(after["identity"]["serial"], old.serial);
    EXPECT_TRUE(token_objects_with_id(w.token, old.key_id).empty()) << "the burnt key is left";
    expect_consistent(w);
    EXPECT_TRUE(unreferenced_keys(w.token_keys(), w.state()).empty());
    const auto state = w.state();
    ASSERT_TRUE(state.last_compromise.has_value());
    EXPECT_FALSE(state.last_compromise->destroy_key.has_value());
    EXPECT_EQ(w.sandbox->api_requests_with_cert(old.x5t), 0u);
}

INSTANTIATE_TEST_SUITE_P(Steps, CompromisedCrash,
                         ::testing::Values("compromised:persist_intent", "compromised:destroy_key",
                                           "compromised:persist"),
                         [](const auto& param_info) {
                             std::string n = param_info.param;
                             for (auto& c : n)
                                 if (c == ':') c = '_';
                             return n;
                         });

}  // namespace
