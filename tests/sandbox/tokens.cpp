#include "tests/sandbox/tokens.hpp"

#include "common/encoding.hpp"
#include "common/ossl_error.hpp"

#include <openssl/rand.h>

namespace mtls::sandbox {
namespace {

std::string random_b64url(size_t n) {
    std::string bytes(n, '\0');
    if (RAND_bytes(reinterpret_cast<unsigned char*>(bytes.data()), static_cast<int>(n)) != 1)
        throw ossl::Error("RAND_bytes failed");
    return encoding::base64url(bytes);
}

}  // namespace

std::int64_t unix_now() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

nlohmann::json TokenClaims::to_json(const std::string& issuer) const {
    nlohmann::json j = {{"iss", issuer},
                        {"sub", client_id},
                        {"client_id", client_id},
                        {"iat", iat},
                        {"nbf", iat},
                        {"exp", exp},
                        {"jti", jti},
                        {"cnf", {{"x5t#S256", cnf_x5t}}}};
    if (!scope.empty()) j["scope"] = scope;
    if (aud.size() == 1)
        j["aud"] = aud.front();
    else if (!aud.empty())
        j["aud"] = aud;
    return j;
}

TokenService::TokenService(const Options& o, const JwtSigner& signer)
    : signer_(signer), format_(o.token_format), lifetime_(o.token_lifetime) {}

std::string TokenService::issue(TokenClaims& c) {
    c.iat = unix_now();
    c.exp = c.iat + lifetime_.count();
    c.jti = random_b64url(16);
    if (format_ == TokenFormat::jwt) return signer_.sign(c.to_json(issuer_));
    std::string handle = random_b64url(32);
    std::lock_guard l(mu_);
    // Forget expired handles so a long run does not grow without bound.
    auto now = c.iat;
    for (auto it = opaque_.begin(); it != opaque_.end();)
        it = it->second.exp + 3600 < now ? opaque_.erase(it) : std::next(it);
    opaque_[handle] = c;
    return handle;
}

TokenService::Result TokenService::check(const std::string& token, TokenClaims& out,
                                         std::string& why) const {
    if (token.find('.') != std::string::npos) {
        auto claims = signer_.verify(token);
        if (!claims) {
            why = "token signature or format is invalid";
            return Result::malformed;
        }
        try {
            if (claims->value("iss", "") != issuer_) {
                why = "token issuer is not this AS";
                return Result::malformed;
            }
            out.client_id = claims->value("client_id", "");
            out.scope = claims->value("scope", "");
            out.iat = claims->value("iat", std::int64_t{0});
            out.exp = claims->at("exp").get<std::int64_t>();
            out.jti = claims->value("jti", "");
            out.cnf_x5t = claims->at("cnf").at("x5t#S256").get<std::string>();
            out.aud.clear();
            if (claims->contains("aud")) {
                auto& a = (*claims)["aud"];
                if (a.is_string())
                    out.aud.push_back(a.get<std::string>());
                else
                    for (auto& e : a) out.aud.push_back(e.get<std::string>());
            }
        } catch (const std::exception&) {
            why = "token claims are incomplete";
            return Result::malformed;
        }
    } else {
        std::lock_guard l(mu_);
        auto it = opaque_.find(token);
        if (it == opaque_.end()) {
            why = "unknown token";
            return Result::malformed;
        }
        out = it->second;
    }
    if (out.exp <= unix_now()) {
        why = "token expired";
        return Result::expired;
    }
    return Result::ok;
}

}  // namespace mtls::sandbox
