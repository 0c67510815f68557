#include "agent/renewal/schedule.hpp"

#include <algorithm>

namespace mtls::renewal {

Clock::time_point renewal_time(Clock::time_point not_before, Clock::time_point not_after,
                               double fraction, double jitter, std::mt19937_64& rng) {
    using std::chrono::duration_cast;
    using ms = std::chrono::milliseconds;
    auto life = duration_cast<ms>(not_after - not_before);
    if (life.count() <= 0) return not_before;
    std::uniform_real_distribution<double> u(-jitter, jitter);
    double at = std::clamp(fraction + u(rng), 0.0, 0.95);
    return not_before + ms(static_cast<long long>(static_cast<double>(life.count()) * at));
}

std::chrono::milliseconds Backoff::next(std::mt19937_64& rng) {
    using ms = std::chrono::milliseconds;
    const long long cap = std::chrono::duration_cast<ms>(max_).count();
    long long span = std::chrono::duration_cast<ms>(initial_).count();
    for (int i = 0; i < attempt_ && span < cap; ++i) span *= 2;
    span = std::min(span, cap);
    ++attempt_;
    std::uniform_int_distribution<long long> d(span / 2, std::max(span / 2, span));
    return ms(d(rng));
}

}  // namespace mtls::renewal
