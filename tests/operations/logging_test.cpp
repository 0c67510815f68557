// The real agent's log as operators read it: with [logging] format = "json" every line of
// its stderr is one JSON object with a timestamp and typed values; [logging] access_log
// switches the proxy's per-request line off and, by reload, on again; under the journal
// (JOURNAL_STREAM naming its stderr) every event is a journal entry with native fields, read
// from a stand-in journal socket.
#include "tests/support/agent_world.hpp"
#include "tests/support/journal_standin.hpp"
#include "tests/support/poll.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <poll.h>

#include <atomic>
#include <fstream>
#include <mutex>
#include <regex>
#include <sstream>
#include <thread>

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
                R"(^(agent|pkcs11|est|renewal|oauth|proxy|admin|metrics|export|reload|revocation)\.[a-z0-9_]+$)")))
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
    EXPECT_TRUE(request["conn_reused"].is_boolean()) << request;
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

TEST(AgentLog, UnderTheJournalEveryEventIsAnEntryWithQueryableFields) {
    JournalStandIn journal;  // this process and the agent it starts: a private /run
    if (!journal.error.empty()) GTEST_SKIP() << journal.error;
    // A reader, as journald is: the socket queues few datagrams (net.unix.max_dgram_qlen)
    // and the agent's sends wait for room.
    std::mutex mu;
    std::vector<std::multimap<std::string, std::string>> entries;
    std::atomic<bool> done{false};
    std::thread reader([&] {
        while (!done) {
            if (auto d = journal.receive()) {
                std::lock_guard lock(mu);
                entries.push_back(parse_journal_native(*d));
            } else {
                pollfd p{journal.fd, POLLIN, 0};
                ::poll(&p, 1, 20);
            }
        }
    });
    struct Join {
        std::atomic<bool>& done;
        std::thread& t;
        ~Join() {
            done = true;
            t.join();
        }
    } join{done, reader};
    AgentWorld w("log-journal");
    // The agent's stderr is <dir>/agent.log (opened for appending): create it to name it.
    const auto log_file = w.agent->dir() / "agent.log";
    std::ofstream(log_file).close();
    w.agent->start({{"JOURNAL_STREAM", journal_stream_of(log_file)}});
    w.agent->wait_healthy(30s);
    ASSERT_TRUE(w.call().is_object()) << w.agent->log();

    auto find = [&](const std::string& event) -> const std::multimap<std::string, std::string>* {
        std::lock_guard lock(mu);
        for (const auto& e : entries) {
            auto it = e.find("EVENT");
            if (it != e.end() && it->second == event) return &e;
        }
        return nullptr;
    };
    ASSERT_TRUE(poll_until([&] { return find("proxy.request") != nullptr; }, 10s))
        << "agent log:\n"
        << w.agent->log();
    auto one = [](const std::multimap<std::string, std::string>& e, const std::string& k) {
        EXPECT_EQ(e.count(k), 1u) << k;
        auto it = e.find(k);
        return it == e.end() ? std::string("<missing>") : it->second;
    };
    const auto& req = *find("proxy.request");  // journalctl -u mtls-agent ROUTE=partner
    EXPECT_EQ(one(req, "ROUTE"), "partner");
    EXPECT_EQ(one(req, "STATUS"), "200");
    EXPECT_EQ(one(req, "METHOD"), "GET");
    EXPECT_EQ(one(req, "PRIORITY"), "6");
    EXPECT_EQ(one(req, "SYSLOG_IDENTIFIER"), "mtls-agent");
    EXPECT_EQ(one(req, "MESSAGE").rfind("proxy.request route=partner ", 0), 0u)
        << one(req, "MESSAGE");
    ASSERT_NE(find("agent.ready"), nullptr);
    ASSERT_NE(find("oauth.token_obtained"), nullptr);
    EXPECT_EQ(one(*find("oauth.token_obtained"), "PROFILE"), "partner");
    {
        std::lock_guard lock(mu);
        for (const auto& e : entries) EXPECT_EQ(e.count("MESSAGE"), 1u);
    }

    EXPECT_EQ(w.agent->stop(), 0);
    // Every event went to the journal: nothing on stderr, no timestamps of our own.
    EXPECT_EQ(w.agent->log().find("event="), std::string::npos) << w.agent->log();
    EXPECT_TRUE(poll_until([&] { return find("agent.stopped") != nullptr; }, 5s));
}

}  // namespace
