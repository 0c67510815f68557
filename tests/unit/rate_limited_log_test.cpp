#include "common/rate_limited_log.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

namespace mtls::log {
namespace {

std::size_t count(const std::string& text, const std::string& needle) {
    std::size_t n = 0;
    for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
    return n;
}

TEST(RateLimitedLog, WritesTheFirstCountsTheRestAndWritesAgainAfterTheInterval) {
    configure(Level::info, Format::text);
    RateLimited l(Level::warning, "test.repeated", std::chrono::milliseconds(200));
    testing::internal::CaptureStderr();
    EXPECT_TRUE(l.write({{"n", 1}}));
    for (int i = 0; i < 1000; ++i) EXPECT_FALSE(l.write({{"n", i}}));
    EXPECT_EQ(l.pending(), 1000u);
    std::this_thread::sleep_for(std::chrono::milliseconds(250));  // the interval itself
    EXPECT_TRUE(l.write({{"n", 2}}));
    EXPECT_EQ(l.pending(), 0u);
    EXPECT_FALSE(l.write({{"n", 3}}));
    l.flush({{"n", 4}});  // the end of a burst: its count at once
    EXPECT_EQ(l.pending(), 0u);
    l.flush();  // nothing left out: nothing written
    const std::string out = testing::internal::GetCapturedStderr();
    EXPECT_EQ(count(out, "event=test.repeated"), 3u) << out;
    EXPECT_NE(out.find("level=warning event=test.repeated n=1\n"), std::string::npos) << out;
    EXPECT_NE(out.find("event=test.repeated n=2 repeated=1000\n"), std::string::npos) << out;
    EXPECT_NE(out.find("event=test.repeated n=4 repeated=1\n"), std::string::npos) << out;
}

}  // namespace
}  // namespace mtls::log
