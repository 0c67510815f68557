// Error codes of the OAuth token client and helpers to build TokenError values.
// Codes are stable strings (they reach the proxy's 503 body, the admin status and logs);
// messages say what failed and what to do, and never contain a token.
#pragma once

#include "agent/token/remote_text.hpp"
#include "agent/token/token_source.hpp"

#include <string>
#include <string_view>

namespace mtls::token::errc {

inline constexpr const char* no_profile = "no_profile";              // unknown token profile
inline constexpr const char* no_identity = "no_identity";            // no client certificate yet
inline constexpr const char* identity_rotated = "identity_rotated";  // asked for an old cert
inline constexpr const char* discovery_failed = "discovery_failed";  // RFC 8414 metadata
inline constexpr const char* as_unreachable = "as_unreachable";      // connect / TLS failure
inline constexpr const char* as_untrusted = "as_untrusted";          // AS certificate refused
inline constexpr const char* as_timeout = "as_timeout";
inline constexpr const char* as_error = "as_error";                // 5xx, 3xx, non-OAuth error
inline constexpr const char* bad_response = "bad_response";        // malformed/hostile answer
inline constexpr const char* token_not_bound = "token_not_bound";  // JWT cnf mismatch
inline constexpr const char* token_malformed = "token_malformed";  // looks like a JWT, is not
inline constexpr const char* config_error = "config_error";        // unusable configuration
inline constexpr const char* shutting_down = "shutting_down";
// The standard RFC 6749 §5.2 / RFC 8707 codes are passed through as the code:
// invalid_request, invalid_client, invalid_grant, unauthorized_client,
// unsupported_grant_type, invalid_scope, invalid_target.

}  // namespace mtls::token::errc

namespace mtls::token {

TokenError make_error(std::string code, std::string message);

}  // namespace mtls::token
