// Reload against the running agent (real binaries, a SoftHSM2 token, the partner sandbox):
// routes added, changed and removed while a load runs on another route, a request in flight
// on a removed route, listener changes, and reloads that must be rejected whole.
#include "tests/support/agent_process.hpp"
#include "tests/support/agent_world.hpp"
#include "tests/support/http_load.hpp"
#include "tests/support/poll.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <csignal>
#include <filesystem>
#include <iostream>
#include <thread>

namespace {

using namespace mtls::test;
using namespace std::chrono_literals;
using nlohmann::json;

std::string quoted(const std::string& s) {
    return json(s).dump();  // a JSON string is a TOML basic string for these paths and URLs
}

// A [[routes]] entry to the sandbox's API ("" base: its root; "echo/": its echo endpoints).
std::string route(const AgentWorld& w, const std::string& name, const std::string& base,
                  const std::string& more = "") {
    return "\n[[routes]]\nname = " + quoted(name) + "\npath_prefix = " + quoted("/" + name + "/") +
           "\nupstream = " + quoted(w.sandbox->api_url() + "/" + base) +
           "\nca_file = " + quoted(w.sandbox->ca_bundle()) + "\n" + more;
}

struct Answer {
    int status = 0;
    json body;
};

// GET http://127.0.0.1:<port><target> with curl: the status (0: no answer) and the JSON body.
Answer get(std::uint16_t port, const std::string& target) {
    auto r = run_command({"curl", "-sS", "--max-time", "30", "-o", "-", "-w", "\n%{http_code}",
                          "http://127.0.0.1:" + std::to_string(port) + target});
    Answer a;
    const auto nl = r.out.rfind('\n');
    if (nl == std::string::npos) return a;
    a.status = std::atoi(r.out.c_str() + nl + 1);
    a.body = json::parse(r.out.substr(0, nl), nullptr, false);
    return a;
}

// The status document's entry for a route (null when the route is not listed).
json route_status(AgentProcess& agent, const std::string& name) {
    auto st = agent.status();
    if (!st) return nullptr;
    for (const auto& r : (*st)["routes"])
        if (r["name"] == name) return r;
    return nullptr;
}

// Runs `until_ok_more` more successful requests of the load (or 20 s).
void let_run(const HttpLoad& load, std::uint64_t more) {
    const auto from = load.ok_so_far();
    poll_until([&] { return load.ok_so_far() >= from + more; }, 20s);
}

// A route added, one changed and one removed while a load runs on an unchanged route: no
// request of the load fails, the slow request on the removed route completes, the new table
// answers as soon as the reload returns, the removed route answers 404, counters of the
// routes that stay are kept and the removed route's are gone from the metrics.
TEST(Reload, RoutesChangeUnderLoadWithoutFailingARequest) {
    AgentWorld w("reload-routes");
    auto& agent = *w.agent;
    const std::string base = agent.config_text();
    agent.write_config(base + route(w, "gone", "") +
                       route(w, "changing", "echo/", "set_headers = { X-Version = \"1\" }\n"));
    agent.start();
    agent.wait_healthy(30s);
    EXPECT_EQ(get(agent.port(), "/changing/headers").body["headers"]["x-version"], "1");

    HttpLoad load(agent.port(), "/partner/api/secure/data", 8, bound_answer);
    let_run(load, 50);
    // A request on the route about to go, answered 4 s after the partner got it.
    std::thread slow([&] {
        auto a = get(agent.port(), "/gone/echo/slow/4000");
        EXPECT_EQ(a.status, 200) << a.body;
        EXPECT_TRUE(a.body.contains("slept_ms")) << a.body;
    });
    ASSERT_TRUE(poll_until(
        [&] {
            auto r = route_status(agent, "gone");
            return r.is_object() && r["pool_size"].get<int>() >= 1;
        },
        20s, 20ms))
        << agent.log();

    agent.write_config(base +
                       route(w, "changing", "echo/", "set_headers = { X-Version = \"2\" }\n") +
                       route(w, "fresh", "echo/"));
    auto r = agent.ctl({"reload", "--json"});
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    auto j = json::parse(r.out);
    EXPECT_EQ(j["routes"]["added"], json::array({"fresh"})) << j;
    EXPECT_EQ(j["routes"]["changed"], json::array({"changing"})) << j;
    EXPECT_EQ(j["routes"]["removed"], json::array({"gone"})) << j;
    EXPECT_EQ(j["restart_needed"], json::array()) << j;

    // The new table, right after the reload returned.
    auto fresh = get(agent.port(), "/fresh/headers");
    EXPECT_EQ(fresh.status, 200) << fresh.body;
    EXPECT_EQ(get(agent.port(), "/changing/headers").body["headers"]["x-version"], "2");
    auto gone = get(agent.port(), "/gone/echo/status/200");
    EXPECT_EQ(gone.status, 404) << gone.body;
    EXPECT_EQ(gone.body["error"], "no_route") << gone.body;

    // The changed route's old pool was retired: its idle connection closed (and left the
    // gauges), only the new pool's connection counts.
    EXPECT_TRUE(poll_until(
        [&] { return route_status(agent, "changing")["pool_size"].get<int>() == 1; }, 5s, 20ms))
        << route_status(agent, "changing");

    slow.join();  // the request in flight on the removed route completed (checked inside)
    let_run(load, 50);
    auto report = load.stop();
    EXPECT_EQ(report.failed, 0u) << (report.samples.empty() ? "" : report.samples.front());
    EXPECT_GE(report.ok, 100u);
    std::cout << "[ figures  ] 8 connections across the reload: " << report.sent << " sent, "
              << report.ok << " ok, " << report.failed << " failed\n";

    // Counters: the unchanged route kept its count across the reload; the removed route is
    // gone from status and metrics; its drained pool left the gauges at zero.
    auto partner = route_status(agent, "partner");
    EXPECT_GE(partner["requests"].get<std::uint64_t>(), report.ok) << partner;
    EXPECT_TRUE(route_status(agent, "gone").is_null());
    auto m = agent.ctl({"metrics"});
    ASSERT_EQ(m.exit_code, 0) << m.err;
    EXPECT_EQ(m.out.find("route=\"gone\""), std::string::npos) << m.out;
    EXPECT_NE(m.out.find("mtls_agent_requests_total{route=\"fresh\",status=\"2xx\"} 1"),
              std::string::npos)
        << m.out;
    EXPECT_NE(m.out.find("mtls_agent_requests_total{route=\"changing\",status=\"2xx\"} 2"),
              std::string::npos)
        << "the changed route keeps its counters\n"
        << m.out;
}

// A route that cannot be built (an upstream that is no https URL passes the parser only if
// checks miss it) or a config error: nothing changes, exit non-zero, the reasons named.
TEST(Reload, ARejectedReloadChangesNothing) {
    AgentWorld w("reload-reject");
    auto& agent = *w.agent;
    const std::string base = agent.config_text();
    agent.start();
    agent.wait_healthy(30s);
    // One good new route and one broken one: neither is applied.
    agent.write_config(base + route(w, "fresh", "echo/") + "\n[[routes]]\nname = \"bad\"\n");
    auto r = agent.ctl({"reload"});
    EXPECT_NE(r.exit_code, 0) << r.out;
    EXPECT_NE(r.err.find("the running one is kept"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("routes[2]"), std::string::npos) << "names the route\n" << r.err;
    EXPECT_EQ(get(agent.port(), "/fresh/headers").status, 404);
    EXPECT_EQ(get(agent.port(), "/partner/api/secure/data").status, 200);
}

// The config with the proxy's TCP address replaced.
std::string with_listen_port(const AgentProcess& agent, std::uint16_t port) {
    std::string t = agent.config_text();
    const std::string from = "\"127.0.0.1:" + std::to_string(agent.port()) + "\"";
    const auto at = t.find(from);
    if (at == std::string::npos) throw std::logic_error("no listener address in the config");
    t.replace(at, from.size(), "\"127.0.0.1:" + std::to_string(port) + "\"");
    return t;
}

// A listener address that cannot be bound rejects the whole reload: a route added in the
// same file is not applied, the old listener keeps serving, exit non-zero with the reason.
TEST(Reload, AnUnbindableListenerRejectsTheWholeReload) {
    AgentWorld w("reload-bind");
    auto& agent = *w.agent;
    agent.start();
    agent.wait_healthy(30s);
    // A port someone else listens on.
    const int taken = ::socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(taken, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(taken, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    ASSERT_EQ(::listen(taken, 1), 0);
    socklen_t len = sizeof sa;
    ASSERT_EQ(::getsockname(taken, reinterpret_cast<sockaddr*>(&sa), &len), 0);
    const auto port = ntohs(sa.sin_port);

    agent.write_config(with_listen_port(agent, port) + route(w, "fresh", "echo/"));
    auto r = agent.ctl({"reload"});
    EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
    const std::string want = "cannot listen on 127.0.0.1:" + std::to_string(port);
    EXPECT_NE(r.err.find(want), std::string::npos) << "want " << want << " in:\n" << r.err;
    EXPECT_NE(r.err.find("the running one is kept"), std::string::npos) << r.err;
    EXPECT_EQ(get(agent.port(), "/partner/api/secure/data").status, 200) << agent.log();
    EXPECT_EQ(get(agent.port(), "/fresh/headers").status, 404) << "the new route is not applied";
    ::close(taken);
}

// A changed listener port (by SIGHUP, as systemctl reload sends it): the new port is bound
// and served, the old one closed; a connection open on the old port finishes its request.
TEST(Reload, AChangedListenerPortIsServedAndTheOldOneClosed) {
    AgentWorld w("reload-port");
    auto& agent = *w.agent;
    const std::string base = agent.config_text();
    agent.write_config(base + route(w, "slow", "echo/"));
    agent.start();
    agent.wait_healthy(30s);
    const auto old_port = agent.port();
    std::thread slow([&] {
        auto a = get(old_port, "/slow/slow/3000");
        EXPECT_EQ(a.status, 200) << a.body;
    });
    ASSERT_TRUE(poll_until(
        [&] {
            auto r = route_status(agent, "slow");
            return r.is_object() && r["pool_size"].get<int>() >= 1;
        },
        20s, 20ms));

    const auto new_port = free_loopback_port();
    agent.write_config(with_listen_port(agent, new_port));  // the "slow" route stays
    ASSERT_EQ(::kill(agent.pid(), SIGHUP), 0);
    EXPECT_TRUE(poll_until([&] { return get(new_port, "/partner/api/secure/data").status == 200; },
                           20s, 20ms))
        << agent.log();
    EXPECT_EQ(get(old_port, "/partner/api/secure/data").status, 0) << "the old port is closed";
    slow.join();
    EXPECT_NE(agent.log().find("reload.applied"), std::string::npos) << agent.log();
}

// [oauth]: a reload that leaves a profile as it was keeps its cached token; one that changes
// the profile drops it, and the next call gets a token with the new settings.
TEST(Reload, AChangedOAuthProfileGetsANewTokenAndAnUnchangedOneKeepsIt) {
    AgentWorld w("reload-oauth");
    auto& agent = *w.agent;
    agent.start();
    agent.wait_healthy(30s);
    auto issued = [&] { return w.sandbox->stats()["tokens_issued"].get<int>(); };
    ASSERT_TRUE(w.call()["token"]["bound_to_this_certificate"].get<bool>()) << agent.log();
    const int first = issued();

    auto same = agent.ctl({"reload"});
    ASSERT_EQ(same.exit_code, 0) << same.err;
    EXPECT_TRUE(w.call()["token"]["bound_to_this_certificate"].get<bool>());
    EXPECT_EQ(issued(), first) << "an unchanged profile keeps its token";

    std::string t = agent.config_text();
    const std::string client = "client_id = \"test-agent\"\n";
    t.insert(t.find(client) + client.size(), "audience = \"reloaded\"\n");
    agent.write_config(t);
    auto changed = agent.ctl({"reload"});
    ASSERT_EQ(changed.exit_code, 0) << changed.err;
    auto answer = w.call();
    EXPECT_TRUE(answer["token"]["bound_to_this_certificate"].get<bool>()) << answer;
    EXPECT_EQ(issued(), first + 1) << "the changed profile's token was dropped";
    EXPECT_NE(answer["token"].dump().find("reloaded"), std::string::npos)
        << "the new token has the new audience: " << answer["token"];
}

// The first [oauth] profiles, brought by a reload into an agent that started without any:
// a route that now names a profile gets tokens bound to the certificate.
TEST(Reload, TheFirstOAuthProfilesArriveByReload) {
    AgentSetup setup;
    setup.use_token = false;
    AgentWorld w("reload-oauth-first", {}, setup);
    auto& agent = *w.agent;
    const std::string full = agent.config_text();
    const auto from = full.find("[oauth]\n"), to = full.find("[[routes]]");
    ASSERT_TRUE(from != std::string::npos && to != std::string::npos && from < to);
    agent.write_config(full.substr(0, from) + full.substr(to));
    agent.start();
    agent.wait_healthy(30s);
    const auto before = w.call();  // no token source yet: the call carries no token
    ASSERT_TRUE(before.is_object()) << agent.log();
    EXPECT_FALSE(before.is_object() && before.contains("token") && before["token"].is_object() &&
                 before["token"].value("present", false))
        << before;

    std::string with = full;
    with.insert(with.find("[[routes]]\n") + 11, "token_profile = \"partner\"\n");
    agent.write_config(with);
    auto r = agent.ctl({"reload"});
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    auto answer = w.call();
    EXPECT_TRUE(answer["token"]["bound_to_this_certificate"].get<bool>()) << answer;
}

// [admin] socket and [metrics] listen address moved by a reload: the reload command gets its
// answer over the old socket, then the new socket and address serve and the old ones are gone;
// metrics.allowed_hosts changes with it.
TEST(Reload, TheAdminSocketAndMetricsAddressMove) {
    const auto metrics_port = free_loopback_port();
    AgentSetup setup;
    setup.extra = "[metrics]\nlisten = \"127.0.0.1:" + std::to_string(metrics_port) + "\"\n";
    AgentWorld w("reload-admin", {}, setup);
    auto& agent = *w.agent;
    agent.start();
    agent.wait_healthy(30s);
    auto metrics_status = [](std::uint16_t port, const std::string& host = "") {
        std::vector<std::string> cmd{"curl", "-sS",       "--max-time", "10",
                                     "-o",   "/dev/null", "-w",         "%{http_code}"};
        if (!host.empty()) cmd.insert(cmd.end(), {"-H", "Host: " + host});
        cmd.push_back("http://127.0.0.1:" + std::to_string(port) + "/metrics");
        return std::atoi(run_command(cmd).out.c_str());
    };
    ASSERT_EQ(metrics_status(metrics_port), 200);
    // DNS rebinding: a page whose name now points to 127.0.0.1 is refused; address literals,
    // localhost and listed names are served.
    const auto port_text = ":" + std::to_string(metrics_port);
    EXPECT_EQ(metrics_status(metrics_port, "rebind.attacker.example" + port_text), 403);
    EXPECT_EQ(metrics_status(metrics_port, "monitor.example" + port_text), 403);
    EXPECT_EQ(metrics_status(metrics_port, "localhost" + port_text), 200);
    EXPECT_EQ(metrics_status(metrics_port, "[::1]" + port_text), 200);

    const auto new_port = free_loopback_port();
    const auto new_socket = agent.dir() / "admin-moved.sock";
    std::string t = agent.config_text();
    const auto old_socket = quoted(agent.socket_path().string());
    t.replace(t.find(old_socket), old_socket.size(), quoted(new_socket.string()));
    const auto old_listen = quoted("127.0.0.1:" + std::to_string(metrics_port));
    t.replace(t.find(old_listen), old_listen.size(),
              quoted("127.0.0.1:" + std::to_string(new_port)) +
                  "\nallowed_hosts = [\"monitor.example\"]");
    agent.write_config(t);
    auto r = agent.ctl({"reload", "--json"});  // over the old socket
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    auto j = json::parse(r.out);
    EXPECT_EQ(j["restart_needed"], json::array()) << j;

    auto st = run_command(
        {AgentProcess::ctl_binary().string(), "--socket", new_socket.string(), "status", "--json"});
    EXPECT_EQ(st.exit_code, 0) << st.out << st.err;
    EXPECT_FALSE(std::filesystem::exists(agent.socket_path())) << "the old socket is removed";
    EXPECT_NE(agent.ctl({"status"}).exit_code, 0);
    EXPECT_EQ(metrics_status(new_port), 200);
    EXPECT_EQ(metrics_status(new_port, "monitor.example"), 200) << "listed by the reload";
    EXPECT_EQ(metrics_status(new_port, "rebind.attacker.example"), 403);
    EXPECT_EQ(metrics_status(metrics_port), 0) << "the old metrics address is closed";
}

}  // namespace
