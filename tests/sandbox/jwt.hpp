// ES256 JSON Web Tokens (RFC 7519/7515) with OpenSSL: signing key, JWKS, sign and verify.
// ES256 signatures are the raw r||s (64 bytes), not DER.
#pragma once

#include "common/ossl.hpp"

#include <nlohmann/json.hpp>

#include <optional>
#include <string>

namespace mtls::sandbox {

class JwtSigner {
  public:
    JwtSigner();  // a fresh P-256 key; kid = its RFC 7638 thumbprint

    std::string sign(const nlohmann::json& claims, const std::string& typ = "at+jwt") const;
    // The claims when the signature (alg ES256, our kid) verifies; nullopt otherwise.
    // Expiry is the caller's business.
    std::optional<nlohmann::json> verify(const std::string& jwt) const;
    nlohmann::json jwks() const;
    const std::string& kid() const { return kid_; }

  private:
    ossl::PKey key_;
    nlohmann::json jwk_;
    std::string kid_;
};

// The public key as a JWK (EC P-256/P-384/P-521 or RSA); nullopt for other key types.
std::optional<nlohmann::json> public_jwk(EVP_PKEY* key);
// RFC 7638 SHA-256 thumbprint (base64url) of a JWK's required members.
std::optional<std::string> jwk_thumbprint(const nlohmann::json& jwk);

}  // namespace mtls::sandbox
