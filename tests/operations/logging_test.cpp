// The real agent's log as operators read it: with [logging] format = "json" every line of
// its stderr is one JSON object with a timestamp and typed values; [logging] access_log
// switches the proxy's per-request line off and, by reload, on again.
#include "tests/support/agent_world.hpp"
#include "tests/support/poll.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <regex>
#include <sstream>

namespace {

using namespace mtls::test;
using namespace std::chrono_literals;
using nlohmann::json;

std::size_t occurrences(const std::string& text, const std::string& needle) {
    std::size_t n = 0;
    for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
    return n;
}

TEST(AgentLog, JsonFormatEveryLineParsesWithATimestampAndTypedValues) {
    AgentSetup setup;
    setup.extra = "\n[logging]\nformat = \"json\"\n";
    AgentWorld w("log-json", {}, setup);
    w.agent->start();
    w.agent->wait_healthy(30s);
    ASSERT_TRUE(w.call().is_object()) << w.agent->log();
    // The access line is written once the answer is sent: wait for it, then stop.
    ASSERT_TRUE(poll_until(
        [&] { return w.agent->log().find("\"event\":\"proxy.request\"") != std::string::npos; },
        10s))
        << w.agent->log();
    EXPECT_EQ(w.agent->stop(), 0);
    const std::string log = w.agent->log();
    const std::regex ts(R"(^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$)");
    std::istringstream in(log);
    std::size_t lines = 0;
    json request;
    for (std::string line; std::getline(in, line);) {
        ++lines;
        auto j = json::parse(line, nullptr, false);
        ASSERT_TRUE(j.is_object()) << "not a JSON object: " << line;
        ASSERT_TRUE(j.contains("ts") && j["ts"].is_string()) << line;
        EXPECT_TRUE(std::regex_match(j["ts"].get<std::string>(), ts)) << line;
        EXPECT_TRUE(j["level"].is_string()) << line;
        const auto event = j.value("event", "");
        EXPECT_TRUE(std::regex_match(
            event,
            std::regex(
                R"(^(agent|pkcs11|est|renewal|oauth|proxy|admin|metrics|export|reload)\.[a-z0-9_]+$)")))
            << "event name outside the scheme: " << line;
        if (event == "proxy.request") request = j;
    }
    EXPECT_GT(lines, 5u) << log;
    ASSERT_TRUE(request.is_object()) << log;
    EXPECT_EQ(request["route"], "partner");
    ASSERT_TRUE(request["status"].is_number_integer()) << request;
    EXPECT_EQ(request["status"].get<int>(), 200);
    EXPECT_TRUE(request["bytes_out"].is_number_unsigned()) << request;
    EXPECT_TRUE(request["total_ms"].is_number()) << request;
}

TEST(AgentLog, AccessLogOffWritesNoRequestLineAndReloadTurnsItOn) {
    AgentSetup setup;
    setup.extra = "\n[logging]\naccess_log = false\n";
    AgentWorld w("log-access", {}, setup);
    w.agent->start();
    w.agent->wait_healthy(30s);
    auto answer = w.call();
    ASSERT_TRUE(answer.is_object()) << w.agent->log();
    EXPECT_TRUE(answer["token"]["bound_to_this_certificate"].get<bool>()) << answer;

    // Reload with the access log on: the next request has its line, the first one none.
    auto text = w.agent->config_text();
    const auto at = text.find("access_log = false");
    ASSERT_NE(at, std::string::npos) << text;
    text.replace(at, 18, "access_log = true");
    w.agent->write_config(text);
    auto r = w.agent->ctl({"reload"});
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    ASSERT_TRUE(w.call().is_object()) << w.agent->log();
    ASSERT_TRUE(poll_until(
        [&] { return w.agent->log().find("event=proxy.request") != std::string::npos; }, 10s))
        << w.agent->log();
    EXPECT_EQ(occurrences(w.agent->log(), "event=proxy.request"), 1u) << w.agent->log();
}

}  // namespace
