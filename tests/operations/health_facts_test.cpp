// Health from facts, against the real agent and sandbox: the access tokens are fetched at
// start and after every new identity (so the AS down is seen before any call), a route whose
// partner fails every call is degraded and named, the counts add up, the last renewal
// survives a restart, and /metrics (promtool-clean), /readyz, /livez answer.
#include "tests/support/agent_process.hpp"
#include "tests/support/agent_world.hpp"
#include "tests/support/poll.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace {

using namespace mtls::test;
using namespace std::chrono_literals;
using nlohmann::json;

// curl through the proxy (or to any URL): the HTTP status, 0 when none was received.
int http_status(const std::string& url, std::string* body = nullptr) {
    auto r =
        run_command({"curl", "-sS", "--max-time", "20", "-o", "-", "-w", "\n%{http_code}", url});
    const auto nl = r.out.rfind('\n');
    if (body) *body = nl == std::string::npos ? std::string() : r.out.substr(0, nl);
    return std::atoi(r.out.c_str() + (nl == std::string::npos ? 0 : nl + 1));
}

// The agent's open file descriptors.
std::size_t open_fds(pid_t pid) {
    const auto dir = "/proc/" + std::to_string(pid) + "/fd";
    return static_cast<std::size_t>(std::distance(std::filesystem::directory_iterator(dir),
                                                  std::filesystem::directory_iterator()));
}

// `n` TCP connections to 127.0.0.1:port that send nothing; closed when destroyed.
struct SilentConnections {
    std::vector<int> fds;
    SilentConnections(std::uint16_t port, int n) {
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(port);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        for (int i = 0; i < n; ++i) {
            const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
            if (fd < 0) break;
            fds.push_back(fd);
            if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) break;
        }
    }
    ~SilentConnections() {
        for (int fd : fds) ::close(fd);
    }
    // How many the other side has closed (EOF or reset).
    std::size_t closed_by_peer() const {
        std::size_t n = 0;
        for (int fd : fds) {
            char c;
            const auto r = ::recv(fd, &c, 1, MSG_DONTWAIT | MSG_PEEK);
            if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) ++n;
        }
        return n;
    }
};

const json& route_named(const json& status, const std::string& name) {
    for (const auto& r : status["routes"])
        if (r["name"] == name) return r;
    throw std::runtime_error("no route " + name + " in " + status.dump());
}

// The counts of a route add up: the partner's answers by class + proxy-made errors + requests
// whose app went away before an answer.
void expect_counts_add_up(const json& route) {
    std::uint64_t sum =
        route["proxy_errors"].get<std::uint64_t>() + route["no_response"].get<std::uint64_t>();
    for (const auto& [k, v] : route["responses"].items()) sum += v.get<std::uint64_t>();
    EXPECT_EQ(sum, route["requests"].get<std::uint64_t>()) << route;
}

// The AS is down from the start: status is degraded naming the profile and the error before
// any app call; once the AS is back the agent gets its token by itself (no call needed).
TEST(HealthFacts, AuthorizationServerDownAtStartIsDegradedBeforeAnyCall) {
    AgentWorld w("health-as-down", {"--as-mode", "down"});
    w.agent->start();
    const auto down = w.agent->wait_status(
        [](const json& s) {
            return s["state"] == "degraded" && !s["tokens"].empty() &&
                   s["tokens"][0]["state"] == "failed";
        },
        60s, "degraded with the AS down, before any call");
    EXPECT_NE(down["reasons"].dump().find("access token for partner"), std::string::npos)
        << down["reasons"];
    EXPECT_NE(down["tokens"][0]["last_error"].get<std::string>(), "") << down["tokens"];
    EXPECT_TRUE(down["identity"].is_object());
    EXPECT_EQ(route_named(down, "partner")["requests"], 0) << "no call was made";
    EXPECT_EQ(w.sandbox->stats()["api_requests"].get<int>(), 0);

    w.sandbox->set_mode("as=normal");
    const auto back = w.agent->wait_healthy(90s);
    EXPECT_EQ(back["tokens"][0]["state"], "valid") << back["tokens"];
    EXPECT_FALSE(back["tokens"][0]["valid_until"].is_null());
    EXPECT_EQ(w.sandbox->stats()["api_requests"].get<int>(), 0) << "recovered without a call";
}

// Two routes whose partner fails every call: one unreachable (502 upstream_connect, made by
// the proxy), one answering 401 error="invalid_token" (the sandbox wants another audience).
// Each is degraded after three failures in a row, named with its last error; a success
// resets it. Proxy-made errors are not counted as the partner's 5xx.
TEST(HealthFacts, ARouteWhosePartnerFailsEveryCallIsDegradedAndNamed) {
    const auto dead_port = free_loopback_port();  // nothing listens there
    AgentSetup setup;
    setup.extra =
        "[[routes]]\nname = \"dead\"\npath_prefix = \"/dead/\"\nupstream = "
        "\"https://127.0.0.1:" +
        std::to_string(dead_port) + "/\"\n";
    AgentWorld w("health-routes", {"--api-audience", "someone-else"}, setup);
    w.agent->start();
    w.agent->wait_healthy(60s);
    const std::string base = "http://127.0.0.1:" + std::to_string(w.agent->port());

    for (int i = 0; i < 3; ++i) {
        std::string body;
        EXPECT_EQ(http_status(base + "/dead/x", &body), 502) << body;
        EXPECT_NE(body.find("upstream_connect"), std::string::npos) << body;
    }
    auto s = w.agent->wait_status([](const json& st) { return st["state"] == "degraded"; }, 20s,
                                  "degraded after three failures of route dead");
    EXPECT_NE(s["reasons"].dump().find("route dead"), std::string::npos) << s["reasons"];
    EXPECT_NE(s["reasons"].dump().find("upstream_connect"), std::string::npos) << s["reasons"];
    const auto& dead = route_named(s, "dead");
    EXPECT_EQ(dead["state"], "degraded");
    EXPECT_EQ(dead["consecutive_failures"], 3);
    EXPECT_EQ(dead["last_error"]["error"], "upstream_connect");
    EXPECT_EQ(dead["last_error"]["status"], 502);
    EXPECT_EQ(dead["proxy_errors"], 3);
    EXPECT_EQ(dead["responses"]["5xx"], 0) << "a proxy-made 502 is not the partner's 5xx";
    expect_counts_add_up(dead);
    auto metrics = w.agent->ctl({"metrics"}).out;
    EXPECT_NE(metrics.find("mtls_agent_proxy_errors_total{route=\"dead\"} 3\n"), std::string::npos)
        << metrics;
    EXPECT_NE(metrics.find("mtls_agent_requests_total{route=\"dead\",status=\"5xx\"} 0\n"),
              std::string::npos)
        << metrics;
    EXPECT_NE(metrics.find("mtls_agent_route_request_duration_seconds_count{route=\"dead\"} 3\n"),
              std::string::npos)
        << metrics;
    EXPECT_NE(metrics.find("mtls_agent_health_state 1\n"), std::string::npos) << metrics;

    // The partner rejects every token: 401 invalid_token (after the proxy's one retry with a
    // fresh token) is a failure of route partner too.
    for (int i = 0; i < 3; ++i) EXPECT_EQ(http_status(w.agent->url("api/secure/data")), 401);
    s = w.agent->status().value();
    const auto& partner = route_named(s, "partner");
    EXPECT_EQ(partner["state"], "degraded") << partner;
    EXPECT_EQ(partner["last_error"]["error"], "partner_invalid_token") << partner;
    EXPECT_EQ(partner["responses"]["4xx"], 3) << "the partner's own answers, by class";
    EXPECT_NE(s["reasons"].dump().find("route partner"), std::string::npos) << s["reasons"];
    expect_counts_add_up(partner);

    // Any other answer of the partner resets the route.
    EXPECT_EQ(http_status(w.agent->url("echo/status/204")), 204);
    s = w.agent->status().value();
    EXPECT_EQ(route_named(s, "partner")["state"], "healthy");
    EXPECT_EQ(route_named(s, "partner")["consecutive_failures"], 0);
    EXPECT_EQ(route_named(s, "dead")["state"], "degraded") << "still failing";
}

// The renewer's own scheduled renewal fetches the new certificate's token at once (no call
// needed); `rotate --wait` answers only once its tokens are fetched; the last renewal's
// outcome is kept across a restart.
TEST(HealthFacts, TokensFollowEveryNewIdentityAndTheLastRenewalSurvivesARestart) {
    AgentSetup setup;
    setup.renewal = "at_fraction = 0.25\njitter = 0.01\n";
    AgentWorld w("health-renewal", {"--cert-validity", "40"}, setup);
    w.agent->start();
    const auto first = w.agent->wait_healthy(60s);
    ASSERT_TRUE(
        poll_until([&] { return w.sandbox->stats()["tokens_issued"].get<int>() >= 1; }, 30s))
        << "no token fetched at start";
    // The scheduled renewal (after ~10 s) publishes a new certificate; its token follows.
    const auto renewed = w.agent->wait_status(
        [&](const json& s) { return s["identity"]["serial"] != first["identity"]["serial"]; }, 60s,
        "the scheduled renewal");
    const auto tokens_then = w.sandbox->stats()["tokens_issued"].get<int>();
    EXPECT_TRUE(poll_until(
        [&] {
            auto s = w.agent->status();
            return s && (*s)["tokens"][0]["state"] == "valid" &&
                   w.sandbox->stats()["tokens_issued"].get<int>() >= 2;
        },
        30s))
        << "no token for the renewed certificate without a call; tokens issued: " << tokens_then;
    EXPECT_EQ(w.sandbox->stats()["api_requests"].get<int>(), 0);

    // rotate --wait: the token step is done before the answer.
    auto r = w.agent->ctl({"rotate", "--wait", "--json"});
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    auto steps = json::parse(r.out)["steps"];
    bool token_ok = false;
    for (const auto& st : steps)
        if (st["step"] == "token" && st["status"] == "ok") token_ok = true;
    EXPECT_TRUE(token_ok) << steps;
    auto after = w.agent->status().value();
    EXPECT_EQ(after["tokens"][0]["state"], "valid") << after["tokens"];
    EXPECT_EQ(after["renewal"]["last_result"], "ok");
    const auto last_at = after["renewal"]["last_at"];
    ASSERT_TRUE(last_at.is_string()) << after["renewal"];
    ASSERT_TRUE(w.state().last_renewal.has_value());
    EXPECT_TRUE(w.state().last_renewal->ok);

    // Restart: the last renewal is what it was, not "never".
    EXPECT_EQ(w.agent->stop(), 0);
    w.agent->start();
    auto again = w.agent->wait_healthy(60s);
    EXPECT_EQ(again["renewal"]["last_result"], "ok") << again["renewal"];
    EXPECT_EQ(again["renewal"]["last_at"], last_at) << again["renewal"];
    (void)renewed;
}

// Stopping while the start-up token request is still on its way (a slow AS) is clean: the
// request's waiter is answered while the event loop's context still exists (exit 0, and no
// sanitizer report in the log under the asan preset).
TEST(HealthFacts, StoppingWhileATokenRequestIsInFlightIsClean) {
    AgentWorld w("health-slow-as", {"--as-mode", "slow"});
    w.agent->start();
    const auto fetching = w.agent->wait_status(
        [](const json& s) { return !s["tokens"].empty() && s["tokens"][0]["state"] == "fetching"; },
        60s, "the start-up token request in flight");
    EXPECT_EQ(fetching["tokens"][0]["valid_until"], nullptr);
    EXPECT_EQ(w.agent->stop(), 0) << w.agent->log();
}

// /metrics passes `promtool check metrics`; /readyz and /livez answer; build info and the
// health state are there.
TEST(HealthFacts, MetricsEndpointIsPromtoolCleanWithReadyzAndLivez) {
    const auto port = free_loopback_port();
    const std::string base = "http://127.0.0.1:" + std::to_string(port);
    AgentSetup setup;
    setup.extra = "[metrics]\nlisten = \"127.0.0.1:" + std::to_string(port) + "\"\n";
    AgentWorld w("health-metrics", {}, setup);
    w.agent->start();
    w.agent->wait_healthy(60s);
    ASSERT_EQ(w.call()["token"]["bound_to_this_certificate"], true);

    std::string ready, live, text;
    EXPECT_EQ(http_status(base + "/readyz", &ready), 200) << ready;
    EXPECT_EQ(json::parse(ready, nullptr, false).value("ready", false), true) << ready;
    EXPECT_EQ(http_status(base + "/livez", &live), 200) << live;
    EXPECT_EQ(http_status(base + "/metrics", &text), 200);
    for (const char* want :
         {"mtls_agent_build_info{version=\"", "mtls_agent_health_state 0\n",
          "# TYPE mtls_agent_route_request_duration_seconds histogram\n",
          "mtls_agent_route_request_duration_seconds_count{route=\"partner\"} 1\n",
          "mtls_agent_certificate_expiration_timestamp_seconds ",
          "mtls_agent_certificate_expiry_seconds ", "mtls_agent_oauth_token_requests_total ",
          "# TYPE mtls_agent_oauth_token_request_failures_total counter\n",
          "mtls_agent_pkcs11_sign_seconds_count "})
        EXPECT_NE(text.find(want), std::string::npos) << want << " missing in:\n" << text;
    EXPECT_EQ(text.find("mtls_agent_token_"), std::string::npos) << "ambiguous names are gone";

    // A local user holding many silent connections to the endpoint: the agent keeps at most
    // 64 of them (the others are closed at once) and the proxy goes on serving.
    {
        const auto before = open_fds(w.agent->pid());
        SilentConnections held(port, 300);
        ASSERT_EQ(held.fds.size(), 300u);
        // All but 64 are closed at once, long before the 10 s request deadline.
        std::size_t closed = 0;
        EXPECT_TRUE(poll_until([&] { return (closed = held.closed_by_peer()) >= 300 - 64; }, 5s))
            << closed << " closed";
        EXPECT_LE(closed, 300u - 64 + 4);
        EXPECT_LE(open_fds(w.agent->pid()), before + 64 + 4) << "metrics connections are capped";
        EXPECT_EQ(w.call()["token"]["bound_to_this_certificate"], true) << "the proxy serves";
    }
    // Once they are gone the endpoint answers again.
    EXPECT_TRUE(poll_until([&] { return http_status(base + "/livez") == 200; }, 20s));

    const auto promtool = run_command({"sh", "-c", "command -v promtool"});
    if (promtool.exit_code != 0) GTEST_SKIP() << "promtool is not installed (Debian: prometheus)";
    const auto file = w.dir.path() / "metrics.txt";
    std::ofstream(file) << text;
    auto check = run_command({"sh", "-c", "promtool check metrics < '" + file.string() + "'"});
    EXPECT_EQ(check.exit_code, 0) << check.out << check.err;
    EXPECT_EQ(check.out + check.err, "") << "promtool found problems";
}

}  // namespace
