#include "agent/token/token_response.hpp"

#include "agent/token/json_strict.hpp"
#include "agent/token/remote_text.hpp"

#include <cmath>
#include <cstdint>
#include "common/text.hpp"

namespace mtls::token {
namespace {

constexpr std::int64_t kMaxExpiresIn = 2147483647;  // 2^31 - 1 seconds
constexpr std::size_t kMaxScope = 4096;

using text::iequals;

// expires_in as seconds, or a problem text.
std::variant<std::int64_t, std::string> read_expires_in(const nlohmann::json& v) {
    const char* bad = "expires_in must be a positive integer number of seconds (at most 2^31-1)";
    if (v.is_number_unsigned()) {
        auto n = v.get<std::uint64_t>();
        if (n == 0 || n > static_cast<std::uint64_t>(kMaxExpiresIn)) return std::string(bad);
        return static_cast<std::int64_t>(n);
    }
    if (v.is_number_integer()) {
        auto n = v.get<std::int64_t>();
        if (n <= 0 || n > kMaxExpiresIn) return std::string(bad);
        return n;
    }
    if (v.is_number_float()) {
        double d = v.get<double>();
        if (!std::isfinite(d) || d < 1 || d > static_cast<double>(kMaxExpiresIn) ||
            d != std::floor(d))
            return std::string(bad);
        return static_cast<std::int64_t>(d);
    }
    if (v.is_string()) {
        const auto& s = v.get_ref<const std::string&>();
        if (s.empty() || s.size() > 10) return std::string(bad);
        std::int64_t n = 0;
        for (char c : s) {
            if (c < '0' || c > '9') return std::string(bad);
            n = n * 10 + (c - '0');
        }
        if (n <= 0 || n > kMaxExpiresIn) return std::string(bad);
        return n;
    }
    return std::string(bad);
}

}  // namespace

bool is_b64token(std::string_view s) {
    std::size_t i = 0;
    for (; i < s.size(); ++i) {
        char c = s[i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/';
        if (!ok) break;
    }
    if (i == 0) return false;  // 1*( ALPHA / DIGIT / ... ) first
    for (; i < s.size(); ++i)
        if (s[i] != '=') return false;
    return true;
}

std::variant<TokenResponse, ResponseProblem> parse_token_response(std::string_view body,
                                                                  const ResponseLimits& limits) {
    std::string why;
    auto parsed = detail::parse_object(body, why);
    if (!parsed) return ResponseProblem{"the answer is " + why};
    const auto& j = *parsed;

    TokenResponse r;
    auto at = j.find("access_token");
    if (at == j.end()) return ResponseProblem{"access_token is missing"};
    if (!at->is_string()) return ResponseProblem{"access_token is not a string"};
    const auto& token = at->get_ref<const std::string&>();
    if (token.empty()) return ResponseProblem{"access_token is empty"};
    if (token.size() > limits.max_access_token)
        return ResponseProblem{"access_token is longer than " +
                               std::to_string(limits.max_access_token) + " bytes"};
    if (!is_b64token(token))
        return ResponseProblem{"access_token has characters outside the RFC 6750 token68 set"};

    auto tt = j.find("token_type");
    if (tt == j.end()) return ResponseProblem{"token_type is missing"};
    if (!tt->is_string()) return ResponseProblem{"token_type is not a string"};
    const auto& type = tt->get_ref<const std::string&>();
    if (!iequals(type, "Bearer"))
        return ResponseProblem{"token_type \"" + sanitize_remote_text(type, 32) +
                               "\" is not supported (only Bearer)"};

    auto ei = j.find("expires_in");
    if (ei == j.end() || ei->is_null()) {
        r.expires_in = limits.default_expires_in;
        r.expires_in_defaulted = true;
    } else {
        auto v = read_expires_in(*ei);
        if (auto* p = std::get_if<std::string>(&v)) return ResponseProblem{*p};
        std::chrono::seconds s{std::get<std::int64_t>(v)};
        if (s > limits.max_expires_in) {
            s = limits.max_expires_in;
            r.expires_in_capped = true;
        }
        r.expires_in = s;
    }

    auto sc = j.find("scope");
    if (sc != j.end() && !sc->is_null()) {
        if (!sc->is_string()) return ResponseProblem{"scope is not a string"};
        const auto& s = sc->get_ref<const std::string&>();
        if (s.size() > kMaxScope) return ResponseProblem{"scope is longer than 4096 bytes"};
        r.scope = s;
    }
    r.access_token = token;
    r.token_type = type;
    return r;
}

std::optional<OAuthErrorResponse> parse_error_response(std::string_view body) {
    std::string why;
    auto parsed = detail::parse_object(body, why);
    if (!parsed) return std::nullopt;
    const auto& j = *parsed;
    auto e = j.find("error");
    if (e == j.end() || !e->is_string()) return std::nullopt;
    const auto& code = e->get_ref<const std::string&>();
    if (code.empty() || code.size() > 128) return std::nullopt;
    for (char c : code)  // RFC 6749: %x20-21 / %x23-5B / %x5D-7E
        if (c < 0x20 || c > 0x7e || c == '"' || c == '\\') return std::nullopt;
    OAuthErrorResponse r;
    r.error = code;
    if (auto d = j.find("error_description"); d != j.end() && d->is_string())
        r.description = sanitize_remote_text(d->get_ref<const std::string&>(), 300);
    if (auto u = j.find("error_uri"); u != j.end() && u->is_string())
        r.uri = sanitize_remote_text(u->get_ref<const std::string&>(), 200);
    return r;
}

}  // namespace mtls::token
