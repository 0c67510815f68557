#include "config/duration.hpp"

#include <gtest/gtest.h>

namespace mtls::config {
namespace {

using std::chrono::milliseconds;

TEST(Duration, ParsesUnitsAndSums) {
    EXPECT_EQ(parse_duration("1500ms"), milliseconds(1500));
    EXPECT_EQ(parse_duration("30s"), milliseconds(30'000));
    EXPECT_EQ(parse_duration("5m"), milliseconds(300'000));
    EXPECT_EQ(parse_duration("2h"), milliseconds(7'200'000));
    EXPECT_EQ(parse_duration("1d"), milliseconds(86'400'000));
    EXPECT_EQ(parse_duration("1h30m"), milliseconds(5'400'000));
    EXPECT_EQ(parse_duration("1m5s250ms"), milliseconds(65'250));
    EXPECT_EQ(parse_duration("0s"), milliseconds(0));
}

TEST(Duration, RejectsMalformed) {
    for (const char* bad : {"", "30", "s", "-5s", "5 s", " 5s", "5s ", "1.5s", "5x", "5sec", "5S",
                            "m5", "99999999999999999999ms", "9223372036854775807h"})
        EXPECT_FALSE(parse_duration(bad).has_value()) << bad;
}

TEST(Duration, FormatsShortestExactForm) {
    EXPECT_EQ(format_duration(milliseconds(0)), "0s");
    EXPECT_EQ(format_duration(milliseconds(1500)), "1500ms");
    EXPECT_EQ(format_duration(milliseconds(120'000)), "2m");
    EXPECT_EQ(format_duration(milliseconds(5'400'000)), "90m");
    EXPECT_EQ(format_duration(milliseconds(86'400'000)), "1d");
    for (long long ms : {1LL, 999LL, 61'000LL, 3'600'000LL, 90'061'001LL})
        EXPECT_EQ(parse_duration(format_duration(milliseconds(ms))), milliseconds(ms));
}

}  // namespace
}  // namespace mtls::config
