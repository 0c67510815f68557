#include "agent/token/jwt_binding.hpp"

#include "agent/token/json_strict.hpp"
#include "agent/token/remote_text.hpp"
#include "common/encoding.hpp"

#include <vector>

namespace mtls::token {
namespace {

bool is_b64url_char(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

std::string_view strip_padding(std::string_view s) {
    while (!s.empty() && s.back() == '=') s.remove_suffix(1);
    return s;
}

BindingCheck malformed(std::string why) {
    BindingCheck b;
    b.result = BindingCheck::Result::malformed;
    b.detail = std::move(why);
    return b;
}

}  // namespace

const char* to_string(BindingCheck::Result r) {
    switch (r) {
        case BindingCheck::Result::opaque:
            return "opaque";
        case BindingCheck::Result::bound:
            return "bound";
        case BindingCheck::Result::mismatch:
            return "mismatch";
        case BindingCheck::Result::unbound:
            return "unbound";
        case BindingCheck::Result::malformed:
            return "malformed";
    }
    return "?";
}

BindingCheck check_binding(std::string_view token, std::string_view expected_x5t) {
    std::vector<std::string_view> parts;
    std::size_t start = 0;
    for (;;) {
        auto dot = token.find('.', start);
        if (dot == std::string_view::npos) {
            parts.push_back(token.substr(start));
            break;
        }
        parts.push_back(token.substr(start, dot - start));
        start = dot + 1;
        if (parts.size() > 3) break;
    }
    if (parts.size() != 3) return {};  // opaque (JWE has 5 parts: opaque to us too)
    for (auto p : parts)
        for (char c : p)
            if (!is_b64url_char(c)) return {};  // not base64url: opaque
    auto header_text = encoding::base64url_decode(parts[0]);
    if (!header_text || header_text->empty() || header_text->front() != '{') return {};

    // From here on the token claims to be a JWT: parse strictly.
    std::string why;
    auto header = detail::parse_object(*header_text, why);
    if (!header) return malformed("JWT header is " + why);
    auto alg = header->find("alg");
    if (alg == header->end() || !alg->is_string())
        return malformed("JWT header has no string \"alg\"");
    if (parts[1].empty()) return malformed("JWT payload is empty");
    auto payload_text = encoding::base64url_decode(parts[1]);
    if (!payload_text) return malformed("JWT payload is not base64url");
    auto payload = detail::parse_object(*payload_text, why);
    if (!payload) return malformed("JWT payload is " + why);

    BindingCheck b;
    if (auto exp = payload->find("exp"); exp != payload->end()) {
        if (exp->is_number_unsigned() && exp->get<std::uint64_t>() <= (1ull << 40))
            b.exp = static_cast<std::int64_t>(exp->get<std::uint64_t>());
        else if (exp->is_number_integer() && exp->get<std::int64_t>() >= 0 &&
                 exp->get<std::int64_t>() <= (1ll << 40))
            b.exp = exp->get<std::int64_t>();
        else
            return malformed("JWT exp is not a plausible integer NumericDate");
    }
    auto cnf = payload->find("cnf");
    if (cnf == payload->end()) {
        b.result = BindingCheck::Result::unbound;
        b.detail = "the JWT has no cnf claim (not certificate-bound)";
        return b;
    }
    if (!cnf->is_object()) return malformed("JWT cnf is not an object");
    auto x5t = cnf->find("x5t#S256");
    if (x5t == cnf->end()) {
        b.result = BindingCheck::Result::unbound;
        b.detail = "the JWT's cnf has no x5t#S256 (not bound to a certificate)";
        return b;
    }
    if (!x5t->is_string()) return malformed("JWT cnf.x5t#S256 is not a string");
    const auto& value = x5t->get_ref<const std::string&>();
    auto raw = encoding::base64url_decode(strip_padding(value));
    if (!raw || raw->size() != 32)
        return malformed("JWT cnf.x5t#S256 is not a base64url SHA-256 value");
    b.token_x5t = std::string(strip_padding(value));
    if (b.token_x5t == strip_padding(expected_x5t)) {
        b.result = BindingCheck::Result::bound;
    } else {
        b.result = BindingCheck::Result::mismatch;
        b.detail = "the token is bound to certificate x5t#S256=" + b.token_x5t + ", not to ours (" +
                   std::string(strip_padding(expected_x5t)) + ")";
    }
    return b;
}

}  // namespace mtls::token
