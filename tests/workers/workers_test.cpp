// The proxy's workers (issue #21, [listener] workers = N) with the real agent: connections
// are spread over the workers (status .proxy and the per-worker metrics say so), a rotation
// and a reload under load from several connections lose no request, one access token is
// fetched for many requests asking at once on both workers (single flight across threads),
// and a graceful stop finishes a request in flight on each worker. Real binaries, a SoftHSM2
// token and the partner sandbox.
#include "tests/support/agent_process.hpp"
#include "tests/support/agent_world.hpp"
#include "tests/support/http_load.hpp"
#include "tests/support/poll.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <nlohmann/json.hpp>

#include <iostream>
#include <sstream>
#include <string>
#include <vector>

namespace {

using namespace mtls::test;
using namespace std::chrono_literals;
using nlohmann::json;

AgentSetup with_workers(int n) {
    AgentSetup setup;
    setup.listener = "workers = " + std::to_string(n) + "\n";
    return setup;
}

// status .proxy.per_worker[i][field] for every worker (empty when the agent cannot be reached).
std::vector<std::uint64_t> per_worker(const AgentProcess& agent, const char* field) {
    std::vector<std::uint64_t> out;
    auto st = agent.status();
    if (!st || !(*st)["proxy"].is_object()) return out;
    for (const auto& w : (*st)["proxy"]["per_worker"]) out.push_back(w[field].get<std::uint64_t>());
    return out;
}

bool all_at_least(const std::vector<std::uint64_t>& v, std::size_t n, std::uint64_t min) {
    if (v.size() != n) return false;
    for (auto x : v)
        if (x < min) return false;
    return true;
}

std::string joined(const std::vector<std::uint64_t>& v) {
    std::ostringstream o;
    for (auto x : v) o << x << " ";
    return o.str();
}

// Waits until the load has `more` successful requests beyond what it had (at most 30 s).
bool more_ok(const HttpLoad& load, std::uint64_t more) {
    const auto from = load.ok_so_far();
    return poll_until([&] { return load.ok_so_far() >= from + more; }, 30s);
}

// The value of one sample line of `mtls-agentctl metrics` (-1 when absent).
double metric(const AgentProcess& agent, const std::string& sample) {
    auto m = agent.ctl({"metrics"});
    std::istringstream in(m.out);
    for (std::string line; std::getline(in, line);)
        if (line.rfind(sample + " ", 0) == 0) return std::stod(line.substr(sample.size() + 1));
    return -1;
}

// Six keep-alive connections on two workers: each worker serves some of them; a rotation
// (rotate --wait) and a reload (which asks for another worker count: restart needed, the
// running two stay) while they send lose nothing.
TEST(Workers, LoadIsSpreadAndSurvivesRotationAndReload) {
    AgentWorld w("workers-load", {}, with_workers(2));
    auto& agent = *w.agent;
    agent.start();
    auto st = agent.wait_healthy(60s);
    ASSERT_EQ(st["proxy"]["workers"], 2) << st["proxy"];

    HttpLoad load(agent.port(), "/partner/api/secure/data", 6, bound_answer);
    ASSERT_TRUE(more_ok(load, 100)) << agent.log();
    // Both workers hold app connections and have served some.
    EXPECT_TRUE(poll_until([&] { return all_at_least(per_worker(agent, "open"), 2, 1); }, 10s))
        << "open per worker: " << joined(per_worker(agent, "open"));
    EXPECT_TRUE(all_at_least(per_worker(agent, "accepted"), 2, 1))
        << "accepted per worker: " << joined(per_worker(agent, "accepted"));
    EXPECT_EQ(metric(agent, "mtls_agent_proxy_workers"), 2);
    auto text = agent.ctl({"status"});
    EXPECT_NE(text.out.find("proxy:        2 worker(s), "), std::string::npos) << text.out;
    EXPECT_NE(text.out.find("(worker 0: "), std::string::npos) << text.out;
    EXPECT_GE(metric(agent, "mtls_agent_worker_client_connections{worker=\"0\"}"), 1);
    EXPECT_GE(metric(agent, "mtls_agent_worker_client_connections{worker=\"1\"}"), 1);
    EXPECT_GE(metric(agent, "mtls_agent_worker_client_connections_accepted_total{worker=\"1\"}"),
              1);

    const auto old_serial = st["identity"]["serial"];
    auto r = agent.ctl({"rotate", "--wait"});
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_TRUE(more_ok(load, 100)) << agent.log();

    std::string conf = agent.config_text();
    const auto at = conf.find("workers = 2");
    ASSERT_NE(at, std::string::npos) << conf;
    conf.replace(at, 11, "workers = 3");
    // And a route added: its pools are made for both workers.
    conf += "\n[[routes]]\nname = \"fresh\"\npath_prefix = \"/fresh/\"\nupstream = \"" +
            w.sandbox->api_url() + "/\"\nca_file = \"" + w.sandbox->ca_bundle() + "\"\n";
    agent.write_config(conf);
    r = agent.ctl({"reload", "--json"});
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    auto j = json::parse(r.out);
    EXPECT_EQ(j["restart_needed"], json::array({"[listener] workers"})) << j;
    EXPECT_EQ(j["routes"]["added"], json::array({"fresh"})) << j;
    EXPECT_TRUE(more_ok(load, 100)) << agent.log();
    {
        HttpLoad fresh(agent.port(), "/fresh/echo/status/200", 4, HttpLoad::status_is(200));
        EXPECT_TRUE(more_ok(fresh, 40)) << agent.log();
        auto fr = fresh.stop();
        EXPECT_EQ(fr.failed, 0u) << (fr.samples.empty() ? "" : fr.samples.front());
    }

    auto report = load.stop();
    EXPECT_EQ(report.failed, 0u) << (report.samples.empty() ? "" : report.samples.front());
    EXPECT_GE(report.ok, 300u);
    st = agent.status().value();
    EXPECT_NE(st["identity"]["serial"], old_serial);
    EXPECT_EQ(st["proxy"]["workers"], 2) << "a reload does not change the workers";
    const auto accepted = per_worker(agent, "accepted");
    std::cout << "[ figures  ] 6 connections on 2 workers across a rotation and a reload: "
              << report.sent << " sent, " << report.ok << " ok, " << report.failed << " failed, "
              << report.reconnects << " reconnects; connections per worker: " << joined(accepted)
              << "\n";
    EXPECT_TRUE(poll_until([&] { return all_at_least(per_worker(agent, "open"), 2, 0); }, 5s));
}

// No cached token and a slow AS: eight requests on their own connections (four per worker)
// all wait for the one token request the first of them started.
TEST(Workers, OneTokenFetchForManyRequestsOnBothWorkers) {
    AgentWorld w("workers-token", {}, with_workers(2));
    auto& agent = *w.agent;
    agent.start();
    agent.wait_healthy(60s);
    ASSERT_NE(w.call().dump(), "null") << agent.log();  // the warm-up's token, used once

    w.sandbox->set_mode("as=slow&delay_ms=1500");
    auto flushed = agent.ctl({"tokens", "flush"});
    ASSERT_EQ(flushed.exit_code, 0) << flushed.out << flushed.err;
    const auto before = w.sandbox->stats()["token_requests"].get<std::uint64_t>();
    const auto accepted_before = per_worker(agent, "accepted");
    ASSERT_EQ(accepted_before.size(), 2u);

    std::vector<std::future<CommandResult>> calls;
    for (int i = 0; i < 8; ++i) calls.push_back(call_async(agent, "api/secure/data"));
    // All eight are open at once (they wait for the token): four on each worker.
    EXPECT_TRUE(poll_until([&] { return all_at_least(per_worker(agent, "open"), 2, 4); }, 10s))
        << "open per worker: " << joined(per_worker(agent, "open"));
    for (auto& c : calls) {
        auto res = c.get();
        ASSERT_EQ(http_status(res), "200") << res.out << res.err << agent.log();
        const std::string body = res.out.substr(0, res.out.rfind('\n'));
        EXPECT_EQ(bound_answer(200, body), "") << body;
    }
    const auto after = w.sandbox->stats()["token_requests"].get<std::uint64_t>();
    EXPECT_EQ(after - before, 1u) << "one token request for eight requests on two workers";
    const auto accepted_after = per_worker(agent, "accepted");
    ASSERT_EQ(accepted_after.size(), 2u);
    EXPECT_GE(accepted_after[0], accepted_before[0] + 4) << joined(accepted_after);
    EXPECT_GE(accepted_after[1], accepted_before[1] + 4) << joined(accepted_after);
}

// SIGTERM with a request in flight on each worker: both finish (200), then the agent exits 0.
TEST(Workers, GracefulStopFinishesTheRequestsInFlightOnEveryWorker) {
    AgentWorld w("workers-stop", {}, with_workers(2));
    auto& agent = *w.agent;
    agent.start();
    agent.wait_healthy(60s);

    auto a = call_async(agent, "echo/slow/3000");
    auto b = call_async(agent, "echo/slow/3000");
    ASSERT_TRUE(poll_until([&] { return all_at_least(per_worker(agent, "open"), 2, 1); }, 10s))
        << "open per worker: " << joined(per_worker(agent, "open"));
    ASSERT_TRUE(
        poll_until([&] { return w.sandbox->stats()["echo_requests"].get<int>() >= 2; }, 10s, 20ms))
        << "the slow requests never reached the partner\n"
        << agent.log();

    ASSERT_EQ(::kill(agent.pid(), SIGTERM), 0);
    for (auto* f : {&a, &b}) {
        auto res = f->get();
        EXPECT_EQ(http_status(res), "200") << res.out << res.err << agent.log();
        EXPECT_NE(res.out.find("slept_ms"), std::string::npos) << res.out;
    }
    auto rc = agent.wait_exit(15s);
    ASSERT_TRUE(rc) << "still running after SIGTERM\n" << agent.log();
    EXPECT_EQ(*rc, 0) << agent.log();
    const auto log = agent.log();
    EXPECT_NE(log.find("in_flight=2"), std::string::npos) << log;
    EXPECT_NE(log.find("agent.stopped"), std::string::npos) << log;
}

}  // namespace
