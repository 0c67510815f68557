// Durations in the config file are strings: one or more <number><unit> groups, units
// ms, s, m, h, d — "1500ms", "30s", "5m", "2h", "1h30m". No sign, no spaces, no fractions.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace mtls::config {

// Returns nullopt on anything that is not a well-formed duration or that overflows.
std::optional<std::chrono::milliseconds> parse_duration(std::string_view text);

// The shortest exact form: 120000 ms -> "2m", 1500 ms -> "1500ms", 0 -> "0s".
std::string format_duration(std::chrono::milliseconds d);

}  // namespace mtls::config
