#include "agent/renewal/schedule.hpp"

#include <gtest/gtest.h>

using namespace mtls::renewal;
using namespace std::chrono_literals;

TEST(Schedule, RenewsAtTheFractionWithinTheJitter) {
    std::mt19937_64 rng(42);
    auto nb = Clock::time_point(1000000s);
    auto na = nb + 3000s;
    for (int i = 0; i < 1000; ++i) {
        auto t = renewal_time(nb, na, 2.0 / 3.0, 0.05, rng);
        EXPECT_GE(t, nb + 1850s);  // 2/3 - 5 % of 3000 s = 1850 s
        EXPECT_LE(t, nb + 2150s);
    }
}

TEST(Schedule, NeverLaterThan95PercentNorBeforeNotBefore) {
    std::mt19937_64 rng(1);
    auto nb = Clock::time_point(1000000s);
    auto na = nb + 60s;
    for (int i = 0; i < 100; ++i) {
        auto late = renewal_time(nb, na, 0.99, 0.2, rng);
        EXPECT_LE(late, nb + 57s);
        auto early = renewal_time(nb, na, 0.01, 0.2, rng);
        EXPECT_GE(early, nb);
    }
    EXPECT_EQ(renewal_time(na, nb, 0.5, 0, rng), na);  // nonsense validity: renew now
}

TEST(Schedule, BackoffGrowsCapsAndResets) {
    std::mt19937_64 rng(7);
    Backoff b(5s, 60s);
    auto first = b.next(rng);
    EXPECT_GE(first, 2500ms);
    EXPECT_LE(first, 5000ms);
    std::chrono::milliseconds last{};
    for (int i = 0; i < 20; ++i) last = b.next(rng);
    EXPECT_GE(last, 30000ms);
    EXPECT_LE(last, 60000ms);
    EXPECT_EQ(b.attempts(), 21);
    b.reset();
    EXPECT_LE(b.next(rng), 5000ms);
}
