// Faults around the running agent: the EST server failing for longer than a renewal window,
// the authorization server down, and the partner resetting connections mid-response.
#include "tests/e2e/figures.hpp"
#include "tests/support/agent_world.hpp"
#include "tests/support/http_load.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

namespace {

using namespace mtls::test;
using namespace mtls::test::e2e;
using namespace std::chrono_literals;
using nlohmann::json;
using Steady = std::chrono::steady_clock;

struct Answer {
    int curl_exit = -1;
    int status = 0;  // 0 when no HTTP status was received
    std::string body;
};

// GET through the proxy with curl (status and body kept apart by curl itself).
Answer get(const AgentWorld& w, const std::string& path) {
    const auto out = w.dir.path() / "answer.body";
    std::filesystem::remove(out);
    auto r = run_command({"curl", "-sS", "--max-time", "30", "-o", out.string(), "-w",
                          "%{http_code}", w.agent->url(path)});
    Answer a;
    a.curl_exit = r.exit_code;
    a.status = std::atoi(r.out.c_str());
    std::ifstream in(out, std::ios::binary);
    std::ostringstream body;
    body << in.rdbuf();
    a.body = body.str();
    return a;
}

std::string describe(const LoadReport& r) {
    std::string s = std::to_string(r.failed) + " failed of " + std::to_string(r.sent) + ":\n";
    for (const auto& f : r.samples) s += "  " + f + "\n";
    return s;
}

// EST answers 500 from before the scheduled renewal until the agent has failed five times
// (the scheduled attempt and four retries with capped exponential backoff); meanwhile the
// agent serves with its still-valid certificate and says degraded; when EST is back it
// renews and is healthy again. The load never sees a failure.
TEST(E2E, EstOutageLongerThanARenewalWindow) {
    AgentSetup setup;
    // 200 s certificates renewed at 6 % ± 1 % (after 10–14 s); retries 1 s, 2 s, 4 s, 4 s, …
    setup.renewal =
        "at_fraction = 0.06\njitter = 0.01\nbackoff_initial = \"1s\"\nbackoff_max = \"4s\"\n";
    AgentWorld w("e2e-est-down", {"--cert-validity", "200"}, setup);
    w.agent->start();
    const auto first = w.agent->wait_healthy(60s);
    const auto serial = first["identity"]["serial"];
    HttpLoad load(w.agent->port(), "/partner/api/secure/data", 8, bound_answer);
    w.sandbox->set_mode("est=500");

    auto failures = [](const json& s) { return s["renewal"]["consecutive_failures"].get<int>(); };
    const auto one = w.agent->wait_status([&](const json& s) { return failures(s) >= 1; }, 60s,
                                          "the scheduled renewal to fail");
    const auto t1 = Steady::now();
    EXPECT_EQ(one["state"], "degraded") << one;
    EXPECT_NE(one["reasons"].dump().find("500"), std::string::npos) << one["reasons"];
    EXPECT_EQ(one["identity"]["serial"], serial) << "the valid certificate is kept";
    const auto five =
        w.agent->wait_status([&](const json& s) { return failures(s) >= 5; }, 90s, "four retries");
    // Backoff: four waits of at least 0.5 + 1 + 2 + 2 s (full jitter) between the attempts.
    EXPECT_GE(Steady::now() - t1, 5s) << "retries came faster than the backoff allows";
    EXPECT_EQ(five["state"], "degraded") << five;
    EXPECT_NE(five["reasons"].dump().find("renewal failed"), std::string::npos) << five["reasons"];
    EXPECT_EQ(five["identity"]["serial"], serial);
    // The proxy kept working all along (checked below) with the old certificate.
    auto answer = w.call();
    EXPECT_EQ(bound_answer(200, answer.dump()), "") << answer;
    EXPECT_EQ(
        norm_serial(answer.value(json::json_pointer("/client_certificate/serial"), std::string())),
        norm_serial(serial));

    w.sandbox->set_mode("est=normal");
    const auto back = w.agent->wait_status(
        [&](const json& s) { return s["state"] == "healthy" && s["identity"]["serial"] != serial; },
        60s, "the renewal once EST is back");
    EXPECT_EQ(back["renewal"]["consecutive_failures"], 0);
    EXPECT_TRUE(poll_until([&] { return load.ok_so_far() > 0; }, 10s));
    const auto report = load.stop();
    figures().add(report);
    figures().renewals += 1;
    EXPECT_EQ(report.failed, 0u) << describe(report);
    EXPECT_GT(report.ok, 0u);
    expect_consistent(w);
}

// The AS down: once no token can be had the app gets a 503 saying why; status says
// degraded; when the AS is back, requests work again without an operator.
TEST(E2E, AuthorizationServerDownThenBack) {
    AgentWorld w("e2e-as-down");
    w.agent->start();
    w.agent->wait_healthy(60s);
    ASSERT_EQ(get(w, "api/secure/data").status, 200);

    w.sandbox->set_mode("as=down");
    // The cached token still works until it is gone: flush it.
    ASSERT_EQ(w.agent->ctl({"tokens", "flush"}).exit_code, 0);
    auto a = get(w, "api/secure/data");
    EXPECT_EQ(a.status, 503) << a.body;
    auto err = json::parse(a.body, nullptr, false);
    ASSERT_TRUE(err.is_object()) << a.body;
    EXPECT_EQ(err["error"], "token_unavailable") << a.body;
    EXPECT_NE(err["message"].get<std::string>().find("partner"), std::string::npos) << a.body;
    const auto down = w.agent->wait_status([](const json& s) { return s["state"] == "degraded"; },
                                           30s, "degraded while the AS is down");
    EXPECT_NE(down["reasons"].dump().find("access token for partner"), std::string::npos)
        << down["reasons"];
    EXPECT_TRUE(down["identity"].is_object()) << "the identity does not depend on the AS";

    w.sandbox->set_mode("as=normal");
    EXPECT_TRUE(poll_until([&] { return get(w, "api/secure/data").status == 200; }, 120s))
        << "no recovery after the AS came back\n"
        << w.agent->log();
    auto ok = get(w, "api/secure/data");
    EXPECT_EQ(bound_answer(static_cast<unsigned>(ok.status), ok.body), "");
    w.agent->wait_healthy(60s);
}

// The partner resets the connection mid-response: the app sees a clean error (the proxy cuts
// the response it had started to stream, or answers 502 when nothing was sent yet) — never a
// complete answer, never a hang — and the requests around it keep working.
TEST(E2E, PartnerResetMidResponse) {
    AgentWorld w("e2e-reset");
    w.agent->start();
    w.agent->wait_healthy(60s);
    HttpLoad load(w.agent->port(), "/partner/api/secure/data", 8, bound_answer);
    int cuts = 0, bad_gateways = 0;
    for (int i = 0; i < 10; ++i) {
        auto a = get(w, "echo/reset");
        const bool cut = a.curl_exit == 18 || a.curl_exit == 56;  // partial body / recv error
        const bool bad_gateway = a.curl_exit == 0 && a.status >= 502 && a.status <= 504;
        cuts += cut;
        bad_gateways += bad_gateway;
        if (bad_gateway) {
            auto e = json::parse(a.body, nullptr, false);
            EXPECT_TRUE(e.is_object() && e.value("error", "") == "upstream_reset") << a.body;
        }
        EXPECT_TRUE(cut || bad_gateway) << "curl exit " << a.curl_exit << ", status " << a.status
                                        << ", " << a.body.size() << " bytes";
        EXPECT_LT(a.body.size(), 1048576u) << "a reset answer arrived complete";
        auto next = get(w, "api/secure/data");
        EXPECT_EQ(bound_answer(static_cast<unsigned>(next.status), next.body), "")
            << "the request after a reset failed";
    }
    std::printf("[ figures  ] 10 resets: %d answered 502, %d cut mid-body\n", bad_gateways, cuts);
    EXPECT_TRUE(poll_until([&] { return load.ok_so_far() >= 50; }, 30s));
    const auto report = load.stop();
    figures().add(report);
    EXPECT_EQ(report.failed, 0u) << describe(report);
    auto st = w.agent->wait_healthy(30s);
    // Each reset is a proxy-made 502 or a partner response cut off mid-body.
    const auto& route = st["routes"][0];
    EXPECT_EQ(route["proxy_errors"].get<int>() + route["broken_responses"].get<int>(), 10)
        << "the resets are counted" << st;
}

}  // namespace
