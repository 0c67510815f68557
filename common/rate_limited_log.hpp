// A log line that may repeat many times a second (accept failures at EMFILE, refused
// connections under a flood): the first occurrence is written at once, later ones within
// `interval` are only counted, and the next one after the interval is written with
// `repeated=N` (how many were left out since the last line). flush() writes the count of a
// burst that ended without a later occurrence (call it when the condition clears).
//
//   log::RateLimited accept_failed(log::Level::warning, "proxy.accept_failed",
//                                  std::chrono::seconds(5));
//   accept_failed.write({{"error", ec.message()}});
#pragma once

#include "common/log.hpp"

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

namespace mtls::log {

class RateLimited {
  public:
    using Clock = std::chrono::steady_clock;

    RateLimited(Level level, std::string event, std::chrono::milliseconds interval);

    // Writes the line now, or counts it when one was written less than `interval` ago.
    // Returns whether it was written. At most 5 fields (a line with repeated=N shows the
    // first 5).
    bool write(std::initializer_list<Field> fields);
    // Writes `event` with repeated=N if occurrences were left out since the last line.
    void flush(std::initializer_list<Field> fields = {});

    // Occurrences left out since the last written line.
    std::uint64_t pending() const;

  private:
    void emit(std::initializer_list<Field> fields, std::uint64_t repeated);

    const Level level_;
    const std::string event_;
    const std::chrono::milliseconds interval_;
    mutable std::mutex mu_;
    bool written_ = false;
    Clock::time_point last_{};
    std::uint64_t suppressed_ = 0;
};

}  // namespace mtls::log
