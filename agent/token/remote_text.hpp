// Text that came from the AS, made safe to show, and the standard OAuth error codes.
// No Asio, no I/O: part of the pure parsers (mtls_token_parsers, fuzzed).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace mtls::token {

// Text that came from the AS (error_description, a body excerpt) made safe for a message:
// printable ASCII only (others become '?'), at most `max` bytes (then "...").
std::string sanitize_remote_text(std::string_view text, std::size_t max = 200);

// True when `code` is one of the RFC 6749 §5.2 / RFC 8707 token endpoint error codes.
bool is_standard_oauth_error(std::string_view code);

}  // namespace mtls::token
