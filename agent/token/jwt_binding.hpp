// RFC 8705 §3.1 binding check of an access token before we send it.
//
// Which tokens are JWTs: exactly three dot-separated base64url segments (JWS compact
// serialization) whose first segment decodes to text starting with '{'. Anything else is
// opaque (passed on as is: only the resource server can check it, e.g. by introspection).
//
// Decision: a token that LOOKS like a JWT (the rule above) but whose header or payload is
// not a strictly valid JSON object, whose header has no string "alg", or whose cnf member
// is malformed, is refused as `malformed` — a half-valid JWT from our own AS is a sign of a
// broken or hostile AS, and sending it would only fail later at the partner.
// A well-formed JWT without cnf.x5t#S256 is `unbound` (refused as well: this agent only
// uses certificate-bound tokens). The signature is NOT verified (the resource server's job).
// Pure, never throws: fuzzed by tests/fuzz/fuzz_token_response.cpp.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mtls::token {

struct BindingCheck {
    enum class Result { opaque, bound, mismatch, unbound, malformed };
    Result result = Result::opaque;
    std::string token_x5t;            // cnf.x5t#S256 of the JWT (mismatch/bound), not secret
    std::optional<std::int64_t> exp;  // the JWT's exp (seconds since the epoch), if an integer
    std::string detail;               // why malformed/unbound/mismatch (no token content)
};

// expected_x5t: base64url (no padding) SHA-256 of the leaf certificate DER.
BindingCheck check_binding(std::string_view access_token, std::string_view expected_x5t);

const char* to_string(BindingCheck::Result r);

}  // namespace mtls::token
