// Strict parsing of the token endpoint's answer (RFC 6749 §5.1 success, §5.2 error).
// Pure functions over the body text: no I/O, no logging, never throw — the fuzz target
// (tests/fuzz/fuzz_token_response.cpp) feeds them arbitrary bytes.
//
// What we accept in a success answer (a JSON object; other members are ignored):
//   access_token  string, 1..16 KiB, RFC 6750 b64token charset
//                 (ALPHA DIGIT - . _ ~ + /, then optional trailing '=')
//   token_type    string, "Bearer" compared case-insensitively (RFC 6749 §5.1)
//   expires_in    optional; a JSON integer, an integral JSON number or a string of 1..10
//                 decimal digits; 1 ..= 2^31-1; above max_expires_in it is capped.
//                 Missing: default_expires_in (the caller logs it).
//   scope         optional string (≤ 4 KiB)
// Error messages never contain the access token nor echo the body.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace mtls::token {

struct ResponseLimits {
    std::size_t max_access_token = 16 * 1024;
    std::chrono::seconds default_expires_in{300};
    std::chrono::seconds max_expires_in{365L * 24 * 3600};
};

struct TokenResponse {
    std::string access_token;
    std::string token_type;  // as sent ("Bearer", "bearer", …)
    std::chrono::seconds expires_in{0};
    bool expires_in_defaulted = false;  // the AS sent none: default_expires_in used
    bool expires_in_capped = false;     // the AS sent more than max_expires_in
    std::optional<std::string> scope;
};

struct ResponseProblem {
    std::string what;  // e.g. "access_token is missing", "expires_in is not a positive integer"
};

std::variant<TokenResponse, ResponseProblem> parse_token_response(
    std::string_view body, const ResponseLimits& limits = {});

// RFC 6749 §5.2 error answer: {"error": "...", "error_description": "...", "error_uri": "..."}.
// nullopt when the body is not such an object (error must be a non-empty string of
// printable ASCII, ≤ 128 bytes). error_description/error_uri are kept only when strings,
// sanitized and shortened (they are shown to operators).
struct OAuthErrorResponse {
    std::string error;
    std::string description;
    std::string uri;
};
std::optional<OAuthErrorResponse> parse_error_response(std::string_view body);

// RFC 6750 §2.1 b64token.
bool is_b64token(std::string_view s);

}  // namespace mtls::token
