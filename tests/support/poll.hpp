// Test helper: wait for a condition another thread makes true, with a deadline — never a
// fixed sleep. Checks `pred` right away, then about every millisecond.
//
//   ASSERT_TRUE(poll_until([&] { return stats.requests == 1; })) << "never counted";
#pragma once

#include <chrono>
#include <thread>

namespace mtls::test {

// True as soon as pred() is true; false when `timeout` passed first (pred() is checked one
// last time at the deadline). `interval` spaces out checks that are costly themselves
// (running a program, opening the token).
template <class Pred>
bool poll_until(Pred&& pred, std::chrono::milliseconds timeout = std::chrono::seconds(5),
                std::chrono::milliseconds interval = std::chrono::milliseconds(1)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        if (pred()) return true;
        if (std::chrono::steady_clock::now() >= deadline) return pred();
        std::this_thread::sleep_for(interval);
    }
}

}  // namespace mtls::test
