// common/log: the text and JSON lines (timestamps, typed values) and, under the journal, the
// native fields sd_journal_sendv sends — read from a stand-in for /run/systemd/journal/socket
// in a private mount namespace.
#include "common/log.hpp"
#include "tests/support/journal_standin.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

namespace mtls::log {
namespace {

const std::regex& rfc3339_ms() {
    static const std::regex re(R"(^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$)");
    return re;
}

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string l; std::getline(in, l);) out.push_back(l);
    return out;
}

TEST(Log, JsonLinesParseWithTypedValuesAndATimestampFirst) {
    configure(Level::debug, Format::json);
    testing::internal::CaptureStderr();
    info("proxy.request", {{"route", "partner-a"},
                           {"status", 404},
                           {"bytes", std::uint64_t{18446744073709551615ull}},
                           {"delta", -3},
                           {"ratio", 0.25},
                           {"reused", true},
                           {"text", std::string("a \"quoted\"\nline")}});
    warn("renewal.failed", {{"error", "x"}});
    const auto out = testing::internal::GetCapturedStderr();
    configure(Level::info, Format::text);
    const auto lines = lines_of(out);
    ASSERT_EQ(lines.size(), 2u) << out;
    for (const auto& l : lines) {
        auto j = nlohmann::ordered_json::parse(l, nullptr, false);
        ASSERT_FALSE(j.is_discarded()) << l;
        ASSERT_TRUE(j.begin().key() == "ts") << "ts first: " << l;
        EXPECT_TRUE(std::regex_match(j["ts"].get<std::string>(), rfc3339_ms())) << l;
    }
    auto j = nlohmann::json::parse(lines[0]);
    EXPECT_EQ(j["level"], "info");
    EXPECT_EQ(j["event"], "proxy.request");
    EXPECT_EQ(j["route"], "partner-a");
    ASSERT_TRUE(j["status"].is_number_integer()) << lines[0];
    EXPECT_EQ(j["status"].get<int>(), 404);
    ASSERT_TRUE(j["bytes"].is_number_unsigned()) << lines[0];
    EXPECT_EQ(j["bytes"].get<std::uint64_t>(), 18446744073709551615ull);
    EXPECT_EQ(j["delta"].get<int>(), -3);
    ASSERT_TRUE(j["ratio"].is_number_float()) << lines[0];
    EXPECT_DOUBLE_EQ(j["ratio"].get<double>(), 0.25);
    ASSERT_TRUE(j["reused"].is_boolean()) << lines[0];
    EXPECT_TRUE(j["reused"].get<bool>());
    EXPECT_EQ(j["text"], "a \"quoted\"\nline");
    EXPECT_EQ(nlohmann::json::parse(lines[1])["level"], "warning");
}

TEST(Log, TextLinesStartWithTheTimestamp) {
    configure(Level::info, Format::text);
    testing::internal::CaptureStderr();
    info("proxy.request",
         {{"route", "partner-a"}, {"status", 404}, {"reused", false}, {"msg", "a b"}});
    debug("proxy.hidden", {});
    const auto out = testing::internal::GetCapturedStderr();
    const auto lines = lines_of(out);
    ASSERT_EQ(lines.size(), 1u) << out;
    std::smatch m;
    ASSERT_TRUE(std::regex_match(lines[0], m, std::regex(R"(^ts=(\S+) (.*)$)"))) << lines[0];
    EXPECT_TRUE(std::regex_match(m[1].str(), rfc3339_ms())) << lines[0];
    EXPECT_EQ(m[2].str(),
              "level=info event=proxy.request route=partner-a status=404 reused=false msg=\"a b\"");
}

TEST(Log, AJournalStreamThatIsNotStderrIsIgnored) {
    // Inherited by a child whose stderr goes elsewhere: not the journal, so timestamps and
    // no priority prefix.
    ::setenv("JOURNAL_STREAM", "1:2", 1);
    testing::internal::CaptureStderr();
    configure(Level::info, Format::text);
    const bool journal = to_journal();
    info("agent.starting", {});
    const auto out = testing::internal::GetCapturedStderr();
    ::unsetenv("JOURNAL_STREAM");
    configure(Level::info, Format::text);
    EXPECT_FALSE(journal);
    EXPECT_EQ(out.rfind("ts=", 0), 0u) << out;
}

TEST(Log, JournalFieldNames) {
    EXPECT_EQ(journal_field_name("route"), "ROUTE");
    EXPECT_EQ(journal_field_name("upstream-ms.total"), "UPSTREAM_MS_TOTAL");
    EXPECT_EQ(journal_field_name("_hidden"), "F__HIDDEN");
    EXPECT_EQ(journal_field_name("3xx"), "F_3XX");
    EXPECT_EQ(journal_field_name("message"), "F_MESSAGE");
    EXPECT_EQ(journal_field_name("priority"), "F_PRIORITY");
    EXPECT_EQ(journal_field_name(""), "F_");
    EXPECT_EQ(journal_field_name(std::string(100, 'a')).size(), 64u);
}

// In a child (the mount namespace and JOURNAL_STREAM stay there): the stand-in journal
// socket, stderr a file that JOURNAL_STREAM names. It logs one event, passes on the datagram,
// then closes the socket and logs again (the stderr fallback). Writes to `report`:
// "skip <reason>", or the datagram's length, a newline, the datagram and the stderr file's
// text.
[[noreturn]] void journal_child(int report) {
    auto give_up = [&](const std::string& why) {
        const std::string r = "skip " + why;
        (void)!::write(report, r.data(), r.size());
        ::_exit(77);
    };
    test::JournalStandIn journal;
    if (!journal.error.empty()) give_up(journal.error);
    const int err = ::open("/run/stderr.txt", O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (err < 0 || ::dup2(err, 2) < 0)
        give_up(std::string("redirect stderr: ") + std::strerror(errno));
    ::setenv("JOURNAL_STREAM", test::journal_stream_of("/run/stderr.txt").c_str(), 1);
    configure(Level::info, Format::json);
    if (!to_journal()) give_up("JOURNAL_STREAM not recognised");
    warn("proxy.request", {{"route", "partner-a"},
                           {"status", 404},
                           {"reused", true},
                           {"error", "line one\nline two"},
                           {"message", "not the MESSAGE"}});
    const std::string datagram = journal.receive().value_or("");
    ::close(journal.fd);  // the socket file stays, nobody reads it: sendmsg fails (ECONNREFUSED)
    journal.fd = -1;
    warn("proxy.fallback", {{"route", "partner-b"}});  // the journal refused it: stderr
    std::ifstream in("/run/stderr.txt");
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::string r = std::to_string(datagram.size()) + "\n" + datagram + text;
    (void)!::write(report, r.data(), r.size());
    ::_exit(0);
}

TEST(Log, UnderTheJournalEventsAreNativeFieldsAndFallBackToStderr) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root for a private mount namespace";
    int p[2];
    ASSERT_EQ(::pipe(p), 0);
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        ::close(p[0]);
        journal_child(p[1]);
    }
    ::close(p[1]);
    std::string report;
    char buf[4096];
    for (ssize_t n; (n = ::read(p[0], buf, sizeof buf)) > 0;)
        report.append(buf, static_cast<std::size_t>(n));
    ::close(p[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFEXITED(status)) << report;
    if (WEXITSTATUS(status) == 77) GTEST_SKIP() << report;
    ASSERT_EQ(WEXITSTATUS(status), 0) << report;
    const auto nl = report.find('\n');
    ASSERT_NE(nl, std::string::npos) << report;
    const auto len = std::stoul(report.substr(0, nl));
    ASSERT_LE(nl + 1 + len, report.size()) << report;
    const auto fields = test::parse_journal_native(report.substr(nl + 1, len));
    const std::string err = report.substr(nl + 1 + len);
    EXPECT_EQ(fields.count("CODE_FILE"), 0u) << "the logger's own file is no use";
    auto one = [&](const std::string& k) {
        EXPECT_EQ(fields.count(k), 1u) << k;
        auto it = fields.find(k);
        return it == fields.end() ? std::string("<missing>") : it->second;
    };
    EXPECT_EQ(one("EVENT"), "proxy.request");
    EXPECT_EQ(one("ROUTE"), "partner-a");
    EXPECT_EQ(one("STATUS"), "404");
    EXPECT_EQ(one("REUSED"), "true");
    EXPECT_EQ(one("PRIORITY"), "4");
    EXPECT_EQ(one("SYSLOG_IDENTIFIER"), "mtls-agent");
    EXPECT_EQ(one("ERROR"), "line one\nline two");  // sent in the length-prefixed form
    EXPECT_EQ(one("F_MESSAGE"), "not the MESSAGE");
    const auto msg = one("MESSAGE");
    EXPECT_EQ(msg.rfind("proxy.request route=partner-a status=404", 0), 0u) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "one line: " << msg;
    // Nothing reached stderr but the fallback line: priority prefix, no timestamp.
    const auto lines = lines_of(err);
    ASSERT_EQ(lines.size(), 1u) << err;
    EXPECT_EQ(lines[0].rfind("<4>{", 0), 0u) << lines[0];
    auto j = nlohmann::json::parse(lines[0].substr(3), nullptr, false);
    ASSERT_TRUE(j.is_object()) << lines[0];
    EXPECT_EQ(j["event"], "proxy.fallback");
    EXPECT_EQ(j["route"], "partner-b");
    EXPECT_FALSE(j.contains("ts")) << lines[0];
}

}  // namespace
}  // namespace mtls::log
