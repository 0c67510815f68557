// The JWK an authorization server needs to register this host for
// self_signed_tls_client_auth (RFC 8705 §2.2): the certificate's public key with the
// certificate itself in x5c (RFC 7517 §4.7) and its x5t#S256. Every new certificate (each
// renewal and rotation) must be registered again, since the AS matches the certificate.
#pragma once

#include "agent/identity/identity.hpp"

#include <nlohmann/json.hpp>

namespace mtls::identity {

// {"kty", "crv"/"x"/"y" (EC) or "n"/"e" (RSA), "use":"sig", "x5c":[leaf, intermediates…],
// "x5t#S256"}. Throws std::runtime_error for a key type JWK cannot express here.
nlohmann::json registration_jwk(const Identity& id);

}  // namespace mtls::identity
