#include "common/rate_limited_log.hpp"

#include <vector>

namespace mtls::log {

RateLimited::RateLimited(Level level, std::string event, std::chrono::milliseconds interval)
    : level_(level), event_(std::move(event)), interval_(interval) {}

void RateLimited::emit(std::initializer_list<Field> fields, std::uint64_t repeated) {
    if (repeated == 0) {
        log::write(level_, event_, fields);
        return;
    }
    // log::write takes an initializer_list: build the line's fields with "repeated" last.
    std::vector<Field> all(fields.begin(), fields.end());
    all.emplace_back("repeated", repeated);
    switch (all.size()) {
        case 1:
            log::write(level_, event_, {all[0]});
            break;
        case 2:
            log::write(level_, event_, {all[0], all[1]});
            break;
        case 3:
            log::write(level_, event_, {all[0], all[1], all[2]});
            break;
        case 4:
            log::write(level_, event_, {all[0], all[1], all[2], all[3]});
            break;
        case 5:
            log::write(level_, event_, {all[0], all[1], all[2], all[3], all[4]});
            break;
        default:
            log::write(level_, event_, {all[0], all[1], all[2], all[3], all[4], all.back()});
            break;
    }
}

bool RateLimited::write(std::initializer_list<Field> fields) {
    std::uint64_t repeated = 0;
    {
        std::lock_guard lock(mu_);
        const auto now = Clock::now();
        if (written_ && now - last_ < interval_) {
            ++suppressed_;
            return false;
        }
        written_ = true;
        last_ = now;
        repeated = suppressed_;
        suppressed_ = 0;
    }
    emit(fields, repeated);
    return true;
}

void RateLimited::flush(std::initializer_list<Field> fields) {
    std::uint64_t repeated = 0;
    {
        std::lock_guard lock(mu_);
        if (suppressed_ == 0) return;
        repeated = suppressed_;
        suppressed_ = 0;
        last_ = Clock::now();
    }
    emit(fields, repeated);
}

std::uint64_t RateLimited::pending() const {
    std::lock_guard lock(mu_);
    return suppressed_;
}

}  // namespace mtls::log
