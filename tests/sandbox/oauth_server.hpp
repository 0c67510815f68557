// OAuth 2.0 authorization server: RFC 8414 metadata, JWKS, the token endpoint for
// client_credentials with tls_client_auth / self_signed_tls_client_auth (RFC 8705) and
// certificate-bound tokens, RFC 7662 introspection, and the AS fault modes.
//   GET  /.well-known/oauth-authorization-server
//   GET  /jwks
//   POST /token, /mtls/token            (the same endpoint; /mtls/… are the mTLS aliases)
//   POST /introspect, /mtls/introspect
#pragma once

#include "tests/sandbox/ca.hpp"
#include "tests/sandbox/clients.hpp"
#include "tests/sandbox/https_server.hpp"
#include "tests/sandbox/modes.hpp"
#include "tests/sandbox/stats.hpp"
#include "tests/sandbox/tokens.hpp"

namespace mtls::sandbox {

class OAuthServer {
  public:
    OAuthServer(const DevCa& ca, ClientRegistry clients, TokenService& tokens,
                const JwtSigner& signer, Modes& modes, Stats& stats);
    // Base URL, e.g. "https://127.0.0.1:8443" (known once the listener has its port).
    void set_base_url(std::string url);
    nlohmann::json metadata() const;
    Task<void> handle(Exchange& ex);

  private:
    Task<void> token(Exchange& ex);
    Task<void> introspect(Exchange& ex);
    Task<void> oauth_error(Exchange& ex, const std::string& code, const std::string& description);
    Task<void> fault(Exchange& ex, const AsMode& mode, bool& handled);

    const DevCa& ca_;
    ClientRegistry clients_;
    TokenService& tokens_;
    const JwtSigner& signer_;
    Modes& modes_;
    Stats& stats_;
    std::string base_;
};

}  // namespace mtls::sandbox
