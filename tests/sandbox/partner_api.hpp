// The partner's API over mutual TLS:
//   GET /api/secure/data   client certificate details + whether the bearer token was valid
//                          and bound to this connection's certificate
//   /echo/…                test endpoints for the proxy (echo.hpp)
// Certificates must chain to the sandbox CA (or --api-trust-ca), checked by the TLS layer;
// a missing certificate is a 401 at the HTTP level, one not on the CN allowlist a 403.
#pragma once

#include "tests/sandbox/https_server.hpp"
#include "tests/sandbox/options.hpp"
#include "tests/sandbox/stats.hpp"
#include "tests/sandbox/tokens.hpp"

namespace mtls::sandbox {

// What the Authorization header held, after validation.
struct TokenView {
    bool present = false;
    bool valid = false;  // signature/handle, issuer, expiry (binding separately)
    bool bound = false;  // cnf.x5t#S256 equals the connection's certificate thumbprint
    std::string why;     // when !valid or !bound
    TokenClaims claims;
    nlohmann::json to_json() const;
};

class PartnerApi {
  public:
    PartnerApi(const Options& options, const TokenService& tokens, Stats& stats);
    Task<void> handle(Exchange& ex);

  private:
    Task<void> secure(Exchange& ex);
    Task<void> drain(Exchange& ex);

    const Options& opt_;
    const TokenService& tokens_;
    Stats& stats_;
};

// Validates the bearer token of the request (if any), records the binding on the
// exchange and in the counters.
TokenView inspect_token(Exchange& ex, const TokenService& tokens, Stats& stats);

// Client certificate details for responses.
nlohmann::json cert_json(X509* cert);

}  // namespace mtls::sandbox
