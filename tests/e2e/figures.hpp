// The end-to-end suite's figures, summed over its tests and printed when the suite ends
// (a gtest Environment's TearDown), so that they appear in the ctest -V / CI log.
#pragma once

#include "tests/support/http_load.hpp"

#include <atomic>
#include <cstdint>

namespace mtls::test::e2e {

struct Figures {
    std::atomic<std::uint64_t> requests_sent{0};
    std::atomic<std::uint64_t> requests_ok{0};
    std::atomic<std::uint64_t> requests_failed{0};
    std::atomic<std::uint64_t> rotations{0};  // rotate --wait that succeeded
    std::atomic<std::uint64_t> renewals{0};   // renewals the agent made on its own schedule
    std::atomic<std::uint64_t> kills{0};      // SIGKILLs of the agent
    std::atomic<std::uint64_t> restarts{0};   // restarts that came back healthy

    void add(const LoadReport& r) {
        requests_sent += r.sent;
        requests_ok += r.ok;
        requests_failed += r.failed;
    }
};

Figures& figures();

// A count from the environment (e.g. MTLS_E2E_KILLS), or `fallback` (the number).
int env_count(const char* name, int fallback);

}  // namespace mtls::test::e2e
