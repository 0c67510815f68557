// Access tokens of the sandbox AS: issued as ES256 JWTs or opaque strings (--token-format),
// always bound to the client certificate (RFC 8705 cnf.x5t#S256); validated by the partner
// API in-process and through RFC 7662 introspection.
#pragma once

#include "tests/sandbox/jwt.hpp"
#include "tests/sandbox/options.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace mtls::sandbox {

struct TokenClaims {
    std::string client_id;
    std::string scope;             // space-separated, may be empty
    std::vector<std::string> aud;  // RFC 8707 resources / audience
    std::string cnf_x5t;           // base64url SHA-256 of the client certificate
    std::int64_t iat = 0, exp = 0;
    std::string jti;
    nlohmann::json to_json(const std::string& issuer) const;  // JWT claims / introspection
};

class TokenService {
  public:
    TokenService(const Options& o, const JwtSigner& signer);
    void set_issuer(std::string issuer) { issuer_ = std::move(issuer); }
    const std::string& issuer() const { return issuer_; }

    // Fills iat/exp/jti and returns the token string.
    std::string issue(TokenClaims& claims);

    enum class Result { ok, malformed, expired };
    // Validates a token (either format): signature / known handle, issuer, expiry.
    Result check(const std::string& token, TokenClaims& out, std::string& why) const;

    std::chrono::seconds lifetime() const { return lifetime_; }

  private:
    const JwtSigner& signer_;
    TokenFormat format_;
    std::chrono::seconds lifetime_;
    std::string issuer_;
    mutable std::mutex mu_;
    std::map<std::string, TokenClaims> opaque_;  // handle -> claims
};

std::int64_t unix_now();

}  // namespace mtls::sandbox
