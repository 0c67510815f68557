#include "common/rate_limited_log.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

namespace mtls::log {
namespace {

TEST(RateLimitedLog, WritesTheFirstCountsTheRestAndWritesAgainAfterTheInterval) {
    RateLimited l(Level::debug, "test.repeated", std::chrono::milliseconds(200));
    EXPECT_TRUE(l.write({{"n", 1}}));
    for (int i = 0; i < 1000; ++i) EXPECT_FALSE(l.write({{"n", i}}));
    EXPECT_EQ(l.pending(), 1000u);
    std::this_thread::sleep_for(std::chrono::milliseconds(250));  // the interval itself
    EXPECT_TRUE(l.write({{"n", 2}}));                             // written with repeated=1000
    EXPECT_EQ(l.pending(), 0u);
    EXPECT_FALSE(l.write({{"n", 3}}));
    l.flush();  // the burst's count, at once
    EXPECT_EQ(l.pending(), 0u);
}

}  // namespace
}  // namespace mtls::log
