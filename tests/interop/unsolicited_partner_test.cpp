// Partners that write more than was asked for on a keep-alive connection (issue #16 item 1):
// a second, unsolicited response after a complete one, a body after a HEAD answer. Those
// bytes belong to no request (RFC 9112 §6.3); a proxy that pools the connection anyway
// hands them to the next caller as its answer, and that caller's answer to the one after.
// Against the real agent and the sandbox's ?extra= modes (tests/sandbox/unsolicited.hpp):
// every caller after the hostile answer must get exactly its own answer, and a pooled
// connection that receives data while idle must be closed without waiting for a request.
#include "tests/support/agent_world.hpp"
#include "tests/support/poll.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <sstream>

namespace {

using namespace mtls::test;
using namespace std::chrono_literals;
using nlohmann::json;

struct Answer {
    int status = 0;
    std::string head;  // status line and fields, lower-cased
    json body;         // null when no JSON
    std::string raw;
};

// One call through the agent's proxy with curl (a fresh app connection each time), with
// an X-Caller header naming the caller. head_only: a HEAD request.
Answer call_as(const AgentWorld& w, const std::string& caller, const std::string& path,
               bool head_only = false) {
    std::vector<std::string> argv{
        "curl", "-sS", "-i", "--max-time", "30", "-H", "X-Caller: " + caller};
    if (head_only) argv.push_back("-I");
    argv.push_back(w.agent->url(path));
    auto r = run_command(argv);
    Answer a;
    a.raw = r.out + r.err;
    const auto end = r.out.find("\r\n\r\n");
    if (end == std::string::npos) return a;
    a.head = r.out.substr(0, end);
    std::transform(a.head.begin(), a.head.end(), a.head.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (a.head.size() > 12) a.status = std::atoi(a.head.c_str() + 9);
    a.body = json::parse(r.out.substr(end + 4), nullptr, false);
    if (a.body.is_discarded()) a.body = nullptr;
    return a;
}

// "" when `a` is the sandbox's /echo/headers answer to `caller`'s own request and carries
// no cookie; else what is wrong.
std::string own_answer(const Answer& a, const std::string& caller) {
    if (a.status != 200) return "status " + std::to_string(a.status) + ": " + a.raw;
    if (a.head.find("set-cookie:") != std::string::npos)
        return "a foreign Set-Cookie reached " + caller + ": " + a.raw;
    if (!a.body.is_object() || !a.body.contains("headers") ||
        a.body["headers"].value("x-caller", "") != caller)
        return caller + " got someone else's answer: " + a.raw;
    return "";
}

std::uint64_t unsolicited_sent(const AgentWorld& w) {
    return w.sandbox->stats()["unsolicited_sent"].get<std::uint64_t>();
}

// The route's idle upstream connections, from `mtls-agentctl metrics`; -1 if not found.
int idle_upstream(const AgentWorld& w) {
    auto m = w.agent->ctl({"metrics"});
    std::istringstream in(m.out);
    for (std::string line; std::getline(in, line);)
        if (line.starts_with("mtls_agent_upstream_connections{") &&
            line.find("route=\"partner\"") != std::string::npos &&
            line.find("state=\"idle\"") != std::string::npos)
            return std::atoi(line.c_str() + line.rfind(' ') + 1);
    return -1;
}

TEST(UnsolicitedPartner, ASecondResponseNeverReachesTheNextCaller) {
    AgentWorld w{"unsolicited-response"};
    w.agent->start();
    w.agent->wait_healthy(60s);
    ASSERT_EQ(own_answer(call_as(w, "warm-up", "echo/headers"), "warm-up"), "");

    // A's answer is followed by a second response with a Set-Cookie, right away or while
    // the connection is idle in the pool; B and C come after it has arrived.
    constexpr int kRounds = 8;
    int wrong = 0;
    for (int i = 0; i < kRounds; ++i) {
        const std::string delay = i % 2 == 0 ? "0" : "150";
        const auto sent = unsolicited_sent(w);
        const std::string a = "A-" + std::to_string(i);
        EXPECT_EQ(
            own_answer(call_as(w, a, "echo/headers?extra=response&extra_delay_ms=" + delay), a),
            "");
        ASSERT_TRUE(poll_until([&] { return unsolicited_sent(w) > sent; }, 10s, 10ms))
            << "the sandbox never wrote the extra response";
        for (const char* who : {"B-", "C-"}) {
            const std::string caller = who + std::to_string(i);
            auto why = own_answer(call_as(w, caller, "echo/headers"), caller);
            if (!why.empty()) ++wrong;
            EXPECT_EQ(why, "") << "round " << i << " (extra after " << delay << " ms)";
        }
    }
    EXPECT_EQ(wrong, 0) << "of " << 2 * kRounds << " calls after an unsolicited response";
    EXPECT_NE(w.agent->log().find("proxy.upstream_unsolicited_bytes"), std::string::npos)
        << "the agent did not say why it dropped the connection";
}

TEST(UnsolicitedPartner, AnIdleConnectionThatReceivesDataIsClosedAtOnce) {
    // One worker, so one pool: the test counts the route's idle connections, and with more
    // workers B's call may open (and pool) a connection on another worker than A's.
    AgentSetup one_pool;
    one_pool.listener = "workers = 1\n";
    AgentWorld w{"unsolicited-idle", {}, one_pool};
    w.agent->start();
    w.agent->wait_healthy(60s);
    for (int i = 0; i < 3; ++i) {
        const auto sent = unsolicited_sent(w);
        const std::string a = "A-" + std::to_string(i);
        ASSERT_EQ(own_answer(call_as(w, a, "echo/headers?extra=response&extra_delay_ms=300"), a),
                  "");
        // The answer is complete and the connection pooled; the extra response arrives
        // while nobody uses it. No request follows: the agent must notice by itself.
        ASSERT_TRUE(poll_until([&] { return unsolicited_sent(w) > sent; }, 10s, 10ms));
        EXPECT_TRUE(poll_until([&] { return idle_upstream(w) == 0; }, 5s, 20ms))
            << "round " << i << ": the connection that received an unsolicited response is "
            << "still pooled (" << idle_upstream(w) << " idle)";
        const std::string b = "B-" + std::to_string(i);
        EXPECT_EQ(own_answer(call_as(w, b, "echo/headers"), b), "");
    }
}

TEST(UnsolicitedPartner, ABodyAfterAHeadAnswerNeverReachesTheNextCaller) {
    AgentWorld w{"head-late-body"};
    w.agent->start();
    w.agent->wait_healthy(60s);
    ASSERT_EQ(own_answer(call_as(w, "warm-up", "echo/headers"), "warm-up"), "");
    constexpr int kRounds = 6;
    int wrong = 0;
    for (int i = 0; i < kRounds; ++i) {
        const std::string delay = i % 2 == 0 ? "0" : "150";
        const auto sent = unsolicited_sent(w);
        const std::string a = "A-" + std::to_string(i);
        auto head = call_as(w, a, "echo/headers?extra=body&extra_delay_ms=" + delay, true);
        EXPECT_EQ(head.status, 200) << head.raw;
        EXPECT_NE(head.head.find("content-length:"), std::string::npos) << head.raw;
        ASSERT_TRUE(poll_until([&] { return unsolicited_sent(w) > sent; }, 10s, 10ms))
            << "the sandbox never wrote the late body";
        for (const char* who : {"B-", "C-"}) {
            const std::string caller = who + std::to_string(i);
            auto why = own_answer(call_as(w, caller, "echo/headers"), caller);
            if (!why.empty()) ++wrong;
            EXPECT_EQ(why, "") << "round " << i << " (late body after " << delay << " ms)";
        }
    }
    EXPECT_EQ(wrong, 0) << "of " << 2 * kRounds << " calls after a HEAD answer with a late body";
}

}  // namespace
