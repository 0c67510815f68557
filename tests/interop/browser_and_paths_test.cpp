// What a web page or a crafted path can make the real agent do (issue #16 items 4 and 9).
// Every page the host's user opens can reach the loopback port: directly (a cross-site
// request: Origin / Sec-Fetch-Site) or through DNS rebinding (its own name re-pointed to
// 127.0.0.1, so the request carries Host: attacker.example). And since a route's path prefix
// is what authorizes callers, paths that servers decode differently ("..;", %2f, "\",
// double encoding) must not reach the partner unchanged. Each refusal is checked at the
// partner too: the sandbox must not have seen the request.
#include "tests/support/agent_world.hpp"

#include <gtest/gtest.h>

#include <cstdlib>

namespace {

using namespace mtls::test;
using nlohmann::json;

struct Reply {
    int status = 0;
    json body;
};

// curl through the agent's TCP listener, path sent as is, with extra header lines.
Reply call(const AgentWorld& w, const std::string& path, std::vector<std::string> headers = {}) {
    std::vector<std::string> argv{"curl", "-sS", "--path-as-is", "--max-time",    "30",
                                  "-o",   "-",   "-w",           "\n%{http_code}"};
    for (auto& h : headers) {
        argv.push_back("-H");
        argv.push_back(h);
    }
    argv.push_back(w.agent->url(path));
    auto r = run_command(argv);
    Reply out;
    auto nl = r.out.rfind('\n');
    if (nl == std::string::npos) return out;
    out.status = std::atoi(r.out.c_str() + nl + 1);
    out.body = json::parse(r.out.substr(0, nl), nullptr, false);
    return out;
}

class BrowserAndPaths : public ::testing::Test {
  protected:
    // Every request the partner API received, whatever its path, less the stats requests
    // this makes (the sandbox serves them on the API port too).
    std::uint64_t partner_requests(const AgentWorld& w) {
        auto n = w.sandbox->stats()["services"]["api"]["requests"].get<std::uint64_t>();
        return n - stats_calls_++;
    }
    void restart() {
        ASSERT_EQ(w_.agent->stop(), 0);
        w_.agent->start();
        w_.agent->wait_healthy();
    }
    void SetUp() override {
        w_.agent->start();
        w_.agent->wait_healthy();
    }
    // The proxy answers `status`/`code` itself; the partner sees nothing.
    void expect_refused(const std::string& path, std::vector<std::string> headers, int status,
                        const std::string& code, const std::string& key) {
        auto before = partner_requests(w_);
        auto r = call(w_, path, std::move(headers));
        EXPECT_EQ(r.status, status) << path << " " << r.body;
        ASSERT_TRUE(r.body.is_object()) << path;
        EXPECT_EQ(r.body.value("error", ""), code) << r.body;
        EXPECT_NE(r.body.value("message", "").find(key), std::string::npos) << r.body;
        EXPECT_EQ(partner_requests(w_), before) << path << " reached the partner";
    }
    AgentWorld w_{"browser"};
    std::uint64_t stats_calls_ = 0;
};

TEST_F(BrowserAndPaths, DnsRebindingAndCrossSiteRequestsAreRefused) {
    const std::string data = "api/secure/data";
    expect_refused(data, {"Host: attacker.example:8480"}, 403, "host_not_allowed",
                   "listener.allowed_hosts");
    expect_refused(data, {"Origin: https://attacker.example"}, 403, "cross_site_request",
                   "listener.allowed_origins");
    expect_refused(data, {"Origin: null"}, 403, "cross_site_request", "listener.allowed_origins");
    expect_refused(data, {"Sec-Fetch-Site: cross-site", "Sec-Fetch-Mode: no-cors"}, 403,
                   "cross_site_request", "listener.allowed_origins");
    expect_refused(data, {"Origin: http://localhost:3000", "Sec-Fetch-Site: same-site"}, 403,
                   "cross_site_request", "listener.allowed_origins");

    // What local apps send still works: loopback literal (curl's default), localhost.
    EXPECT_EQ(call(w_, data).status, 200);
    EXPECT_EQ(call(w_, data, {"Host: localhost"}).status, 200);
    EXPECT_EQ(call(w_, data, {"Sec-Fetch-Site: same-origin"}).status, 200);

    // The keys that allow them ([listener] changes apply at a restart).
    std::string cfg = w_.agent->config_text();
    auto at = cfg.find("[listener]\n");
    ASSERT_NE(at, std::string::npos);
    cfg.insert(at + 11,
               "allowed_hosts = [\"app.internal\"]\n"
               "allowed_origins = [\"http://localhost:3000\"]\n");
    w_.agent->write_config(cfg);
    restart();
    EXPECT_EQ(call(w_, data, {"Host: app.internal"}).status, 200);
    EXPECT_EQ(call(w_, data, {"Origin: http://localhost:3000", "Sec-Fetch-Site: same-site"}).status,
              200);
    expect_refused(data, {"Origin: https://attacker.example"}, 403, "cross_site_request",
                   "listener.allowed_origins");
}

TEST_F(BrowserAndPaths, AmbiguousPathsNeverReachThePartnerUnlessTheRouteAllowsThem) {
    for (std::string p : {"api/public/..;/secure/data", "api/public%2f..%2fsecure/data",
                          "api/public\\..\\secure/data", "api/public%5c..%5csecure/data",
                          "api/public/%252e%252e/secure/data", "api/data%00"})
        expect_refused(p, {}, 400, "ambiguous_path", "allow_ambiguous_paths");
    // Dot segments are refused whatever the route says.
    expect_refused("api/public/%2e%2e/secure/data", {}, 400, "bad_request", "\"..\"");

    std::string cfg = w_.agent->config_text();
    auto at = cfg.find("path_prefix = \"/partner/\"\n");
    ASSERT_NE(at, std::string::npos);
    cfg.insert(at + 26, "allow_ambiguous_paths = true\n");
    w_.agent->write_config(cfg);
    restart();
    auto before = partner_requests(w_);
    auto r = call(w_, "echo/headers", {});
    ASSERT_EQ(r.status, 200);
    r = call(w_, "api/public/..;/secure/data");
    EXPECT_NE(r.body.value("error", ""), "ambiguous_path") << r.body;
    EXPECT_EQ(partner_requests(w_), before + 2) << "the allowed path did not reach the partner";
}

}  // namespace
