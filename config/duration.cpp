#include "config/duration.hpp"

#include <cstdint>
#include <limits>

namespace mtls::config {

namespace {
struct Unit {
    std::string_view name;
    std::int64_t ms;
};
// Longest names first so "ms" is not read as "m" followed by garbage.
constexpr Unit kUnits[] = {
    {"ms", 1}, {"s", 1000}, {"m", 60'000}, {"h", 3'600'000}, {"d", 86'400'000}};
constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
}  // namespace

std::optional<std::chrono::milliseconds> parse_duration(std::string_view text) {
    if (text.empty()) return std::nullopt;
    std::int64_t total = 0;
    std::size_t i = 0;
    while (i < text.size()) {
        std::int64_t n = 0;
        std::size_t digits = 0;
        while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
            int d = text[i] - '0';
            if (n > (kMax - d) / 10) return std::nullopt;
            n = n * 10 + d;
            ++i;
            ++digits;
        }
        if (digits == 0) return std::nullopt;
        const Unit* unit = nullptr;
        for (const auto& u : kUnits) {
            if (text.substr(i, u.name.size()) == u.name) {
                unit = &u;
                break;
            }
        }
        if (!unit) return std::nullopt;
        i += unit->name.size();
        if (n > kMax / unit->ms) return std::nullopt;
        std::int64_t part = n * unit->ms;
        if (total > kMax - part) return std::nullopt;
        total += part;
    }
    return std::chrono::milliseconds(total);
}

std::string format_duration(std::chrono::milliseconds d) {
    std::int64_t ms = d.count();
    if (ms == 0) return "0s";
    if (ms < 0) return std::to_string(ms) + "ms";  // not produced by parse_duration
    for (auto it = std::rbegin(kUnits); it != std::rend(kUnits); ++it) {
        if (ms % it->ms == 0) return std::to_string(ms / it->ms) + std::string(it->name);
    }
    return std::to_string(ms) + "ms";
}

}  // namespace mtls::config
