#include "tests/sandbox/jwt.hpp"

#include "common/encoding.hpp"
#include "common/ossl_error.hpp"
#include "tests/sandbox/pem.hpp"

#include <openssl/core_names.h>
#include <openssl/ec.h>

namespace mtls::sandbox {
namespace {

using EcdsaSig = ossl::Owned<ECDSA_SIG, &ECDSA_SIG_free>;

std::string bn_param(EVP_PKEY* key, const char* name, int pad = 0) {
    BIGNUM* bn = nullptr;
    if (EVP_PKEY_get_bn_param(key, name, &bn) != 1) throw ossl::Error("key has no parameter");
    ossl::BigNum owned(bn);
    std::string out(pad > 0 ? static_cast<size_t>(pad) : static_cast<size_t>(BN_num_bytes(bn)),
                    '\0');
    if (pad > 0)
        BN_bn2binpad(bn, reinterpret_cast<unsigned char*>(out.data()), pad);
    else
        BN_bn2bin(bn, reinterpret_cast<unsigned char*>(out.data()));
    return out;
}

}  // namespace

std::optional<nlohmann::json> public_jwk(EVP_PKEY* key) {
    if (EVP_PKEY_is_a(key, "EC")) {
        char group[64] = {};
        size_t len = 0;
        if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group,
                                           &len) != 1)
            return std::nullopt;
        std::string g(group), crv;
        int size = 0;
        if (g == "prime256v1" || g == "P-256")
            crv = "P-256", size = 32;
        else if (g == "secp384r1" || g == "P-384")
            crv = "P-384", size = 48;
        else if (g == "secp521r1" || g == "P-521")
            crv = "P-521", size = 66;
        else
            return std::nullopt;
        return nlohmann::json{
            {"kty", "EC"},
            {"crv", crv},
            {"x", encoding::base64url(bn_param(key, OSSL_PKEY_PARAM_EC_PUB_X, size))},
            {"y", encoding::base64url(bn_param(key, OSSL_PKEY_PARAM_EC_PUB_Y, size))}};
    }
    if (EVP_PKEY_is_a(key, "RSA")) {
        return nlohmann::json{{"kty", "RSA"},
                              {"n", encoding::base64url(bn_param(key, OSSL_PKEY_PARAM_RSA_N))},
                              {"e", encoding::base64url(bn_param(key, OSSL_PKEY_PARAM_RSA_E))}};
    }
    return std::nullopt;
}

std::optional<std::string> jwk_thumbprint(const nlohmann::json& jwk) {
    if (!jwk.is_object() || !jwk.contains("kty") || !jwk["kty"].is_string()) return std::nullopt;
    auto str = [&](const char* k) -> std::optional<std::string> {
        if (!jwk.contains(k) || !jwk[k].is_string()) return std::nullopt;
        return jwk[k].get<std::string>();
    };
    std::string canonical;
    if (jwk["kty"] == "EC") {
        auto crv = str("crv"), x = str("x"), y = str("y");
        if (!crv || !x || !y) return std::nullopt;
        // Members in lexicographic order, no whitespace (nlohmann's object is sorted).
        canonical = nlohmann::json{{"crv", *crv}, {"kty", "EC"}, {"x", *x}, {"y", *y}}.dump();
    } else if (jwk["kty"] == "RSA") {
        auto n = str("n"), e = str("e");
        if (!n || !e) return std::nullopt;
        canonical = nlohmann::json{{"e", *e}, {"kty", "RSA"}, {"n", *n}}.dump();
    } else {
        return std::nullopt;
    }
    return encoding::base64url(encoding::sha256(canonical));
}

JwtSigner::JwtSigner() : key_(new_p256_key()) {
    jwk_ = *public_jwk(key_.get());
    kid_ = *jwk_thumbprint(jwk_);
    jwk_["kid"] = kid_;
    jwk_["use"] = "sig";
    jwk_["alg"] = "ES256";
}

nlohmann::json JwtSigner::jwks() const {
    return {{"keys", nlohmann::json::array({jwk_})}};
}

std::string JwtSigner::sign(const nlohmann::json& claims, const std::string& typ) const {
    nlohmann::json header = {{"alg", "ES256"}, {"typ", typ}, {"kid", kid_}};
    std::string input =
        encoding::base64url(header.dump()) + "." + encoding::base64url(claims.dump());
    ossl::MdCtx md(EVP_MD_CTX_new());
    size_t len = 0;
    if (!md || EVP_DigestSignInit(md.get(), nullptr, EVP_sha256(), nullptr, key_.get()) != 1 ||
        EVP_DigestSign(md.get(), nullptr, &len,
                       reinterpret_cast<const unsigned char*>(input.data()), input.size()) != 1)
        throw ossl::Error("JWT signing failed");
    std::string der(len, '\0');
    if (EVP_DigestSign(md.get(), reinterpret_cast<unsigned char*>(der.data()), &len,
                       reinterpret_cast<const unsigned char*>(input.data()), input.size()) != 1)
        throw ossl::Error("JWT signing failed");
    auto p = reinterpret_cast<const unsigned char*>(der.data());
    EcdsaSig sig(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(len)));
    if (!sig) throw ossl::Error("cannot decode ECDSA signature");
    const BIGNUM *r = nullptr, *s = nullptr;
    ECDSA_SIG_get0(sig.get(), &r, &s);
    std::string raw(64, '\0');
    BN_bn2binpad(r, reinterpret_cast<unsigned char*>(raw.data()), 32);
    BN_bn2binpad(s, reinterpret_cast<unsigned char*>(raw.data()) + 32, 32);
    return input + "." + encoding::base64url(raw);
}

std::optional<nlohmann::json> JwtSigner::verify(const std::string& jwt) const {
    auto d1 = jwt.find('.');
    if (d1 == std::string::npos) return std::nullopt;
    auto d2 = jwt.find('.', d1 + 1);
    if (d2 == std::string::npos || jwt.find('.', d2 + 1) != std::string::npos) return std::nullopt;
    auto header_raw = encoding::base64url_decode(std::string_view(jwt).substr(0, d1));
    auto claims_raw = encoding::base64url_decode(std::string_view(jwt).substr(d1 + 1, d2 - d1 - 1));
    auto raw_sig = encoding::base64url_decode(std::string_view(jwt).substr(d2 + 1));
    if (!header_raw || !claims_raw || !raw_sig || raw_sig->size() != 64) return std::nullopt;
    auto header = nlohmann::json::parse(*header_raw, nullptr, false);
    auto claims = nlohmann::json::parse(*claims_raw, nullptr, false);
    if (!header.is_object() || !claims.is_object()) return std::nullopt;
    if (header.value("alg", "") != "ES256" || header.value("kid", "") != kid_) return std::nullopt;

    EcdsaSig sig(ECDSA_SIG_new());
    auto bytes = reinterpret_cast<const unsigned char*>(raw_sig->data());
    ossl::BigNum r(BN_bin2bn(bytes, 32, nullptr));
    ossl::BigNum s(BN_bin2bn(bytes + 32, 32, nullptr));
    if (!sig || !r || !s || ECDSA_SIG_set0(sig.get(), r.get(), s.get()) != 1) return std::nullopt;
    (void)r.release();  // owned by sig now
    (void)s.release();
    unsigned char* der = nullptr;
    int der_len = i2d_ECDSA_SIG(sig.get(), &der);
    if (der_len <= 0) return std::nullopt;
    std::string der_sig(reinterpret_cast<char*>(der), static_cast<size_t>(der_len));
    OPENSSL_free(der);
    std::string_view input = std::string_view(jwt).substr(0, d2);
    ossl::MdCtx md(EVP_MD_CTX_new());
    bool ok = md &&
              EVP_DigestVerifyInit(md.get(), nullptr, EVP_sha256(), nullptr, key_.get()) == 1 &&
              EVP_DigestVerify(md.get(), reinterpret_cast<const unsigned char*>(der_sig.data()),
                               der_sig.size(), reinterpret_cast<const unsigned char*>(input.data()),
                               input.size()) == 1;
    ossl::drain_errors();
    if (!ok) return std::nullopt;
    return claims;
}

}  // namespace mtls::sandbox
