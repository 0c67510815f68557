// When to renew, and how long to wait after a failure.
#pragma once

#include <chrono>
#include <random>

namespace mtls::renewal {

using Clock = std::chrono::system_clock;
using Seconds = std::chrono::seconds;

// The renewal time for a certificate valid [not_before, not_after]: at `fraction` of the
// lifetime, moved by a uniform random amount in ±jitter·lifetime, never before not_before
// and never later than 95 % of the lifetime (so a renewal always has a chance to retry).
Clock::time_point renewal_time(Clock::time_point not_before, Clock::time_point not_after,
                               double fraction, double jitter, std::mt19937_64& rng);

// Capped exponential backoff with "full jitter": attempt n waits a random time in
// [initial·2^n / 2, initial·2^n], capped at max. reset() after a success.
class Backoff {
  public:
    Backoff(Seconds initial, Seconds max) : initial_(initial), max_(max) {}
    std::chrono::milliseconds next(std::mt19937_64& rng);
    void reset() { attempt_ = 0; }
    int attempts() const { return attempt_; }

  private:
    Seconds initial_, max_;
    int attempt_ = 0;
};

}  // namespace mtls::renewal
