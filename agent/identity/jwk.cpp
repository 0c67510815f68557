#include "agent/identity/jwk.hpp"

#include "common/encoding.hpp"
#include "common/ossl_error.hpp"

#include <openssl/core_names.h>
#include <openssl/evp.h>

#include <stdexcept>
#include <string>

namespace mtls::identity {
namespace {

std::string jwk_der(X509* c) {
    unsigned char* der = nullptr;
    const int n = i2d_X509(c, &der);
    if (n <= 0) throw ossl::Error("cannot encode a certificate");
    std::string out(reinterpret_cast<char*>(der), static_cast<std::size_t>(n));
    OPENSSL_free(der);
    return out;
}

// A big-endian unsigned integer parameter, without leading zero bytes (RFC 7518 §6.3.1).
std::string bn_param(EVP_PKEY* key, const char* name) {
    BIGNUM* bn = nullptr;
    if (EVP_PKEY_get_bn_param(key, name, &bn) != 1)
        throw ossl::Error(std::string("key has no ") + name);
    std::string out(static_cast<std::size_t>(BN_num_bytes(bn)), '\0');
    BN_bn2bin(bn, reinterpret_cast<unsigned char*>(out.data()));
    BN_free(bn);
    return out;
}

}  // namespace

nlohmann::json registration_jwk(const Identity& id) {
    EVP_PKEY* pub = X509_get0_pubkey(id.leaf());
    if (!pub) throw ossl::Error("the certificate's public key cannot be read");
    nlohmann::json jwk;
    if (EVP_PKEY_is_a(pub, "EC")) {
        char group[64] = {};
        if (EVP_PKEY_get_utf8_string_param(pub, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group,
                                           nullptr) != 1)
            throw ossl::Error("EC key without a named curve");
        const std::string g = group;
        std::string crv;
        std::size_t size = 0;
        if (g == "prime256v1" || g == "P-256")
            crv = "P-256", size = 32;
        else if (g == "secp384r1" || g == "P-384")
            crv = "P-384", size = 48;
        else if (g == "secp521r1" || g == "P-521")
            crv = "P-521", size = 66;
        else
            throw std::runtime_error("no JWK curve name for " + g);
        unsigned char point[1 + 2 * 66];
        std::size_t len = 0;
        if (EVP_PKEY_get_octet_string_param(pub, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, point,
                                            sizeof point, &len) != 1 ||
            len != 1 + 2 * size || point[0] != 0x04)
            throw ossl::Error("cannot read the EC public point");
        const std::string xy(reinterpret_cast<char*>(point + 1), 2 * size);
        jwk = {{"kty", "EC"},
               {"crv", crv},
               {"x", encoding::base64url(xy.substr(0, size))},
               {"y", encoding::base64url(xy.substr(size))}};
    } else if (EVP_PKEY_is_a(pub, "RSA")) {
        jwk = {{"kty", "RSA"},
               {"n", encoding::base64url(bn_param(pub, OSSL_PKEY_PARAM_RSA_N))},
               {"e", encoding::base64url(bn_param(pub, OSSL_PKEY_PARAM_RSA_E))}};
    } else {
        throw std::runtime_error(
            std::string("no JWK form for a ") +
            (EVP_PKEY_get0_type_name(pub) ? EVP_PKEY_get0_type_name(pub) : "?") + " key");
    }
    jwk["use"] = "sig";
    // x5c: standard base64 DER (not base64url), leaf first (RFC 7517 §4.7).
    auto x5c = nlohmann::json::array();
    x5c.push_back(encoding::base64(jwk_der(id.leaf())));
    for (const auto& c : id.chain()) x5c.push_back(encoding::base64(jwk_der(c.get())));
    jwk["x5c"] = x5c;
    jwk["x5t#S256"] = id.x5t_s256();
    return jwk;
}

}  // namespace mtls::identity
