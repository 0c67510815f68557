// Strict JSON parsing for answers of the AS: a JSON object at the top, bounded nesting, no
// duplicate member names at the top level. Pure (no I/O), shared by the token response and
// metadata parsers.
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <string_view>

namespace mtls::token::detail {

// Parses `text` as one JSON object. On failure returns nullopt and sets `why` (no input
// echoed back: the input may hold a secret).
std::optional<nlohmann::json> parse_object(std::string_view text, std::string& why,
                                           int max_depth = 16);

}  // namespace mtls::token::detail
