// TokenSource: what the proxy needs from the OAuth part — a bearer token for a route's
// token profile, bound to the identity the upstream connection presents (RFC 8705).
// The real implementation (client-credentials over mTLS, cache keyed by thumbprint,
// single-flight refresh) lives beside this header; the proxy only knows this interface.
// Tokens are secrets: never log them, never put them in error messages.
#pragma once

#include "agent/identity/identity.hpp"
#include "agent/net/asio.hpp"

#include <string>
#include <variant>

namespace mtls::token {

struct TokenError {
    std::string code;     // stable, e.g. "as_unreachable", "invalid_client", "no_profile"
    std::string message;  // what failed and what to do; never contains a token
};

struct Token {
    std::string access_token;  // the secret; goes into `Authorization: Bearer …` only
    std::string token_type = "Bearer";
};

using TokenResult = std::variant<Token, TokenError>;

class TokenSource {
  public:
    virtual ~TokenSource() = default;
    // A valid token for `profile`, bound to `id`'s certificate (x5t#S256). May suspend
    // (network, single-flight wait). Must not throw; errors come back as TokenError.
    virtual net::awaitable<TokenResult> get(const std::string& profile,
                                            identity::IdentityPtr id) = 0;
    // The partner rejected the token (401 invalid_token): drop it from the cache so the
    // next get() fetches a new one. thumbprint: Identity::x5t_s256() of the identity used.
    virtual void invalidate(const std::string& profile, const std::string& thumbprint) = 0;
};

}  // namespace mtls::token
