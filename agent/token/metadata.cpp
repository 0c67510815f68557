#include "agent/token/metadata.hpp"

#include "agent/token/json_strict.hpp"
#include "agent/token/remote_text.hpp"

namespace mtls::token {
namespace {

std::string_view trim_slash(std::string_view s) {
    while (!s.empty() && s.back() == '/') s.remove_suffix(1);
    return s;
}

}  // namespace

bool is_https_url(std::string_view url, bool allow_http) {
    if (url.size() > 2048) return false;
    std::string_view rest;
    if (url.starts_with("https://"))
        rest = url.substr(8);
    else if (allow_http && url.starts_with("http://"))
        rest = url.substr(7);
    else
        return false;
    if (rest.empty() || rest.front() == '/' || rest.front() == ':') return false;
    for (char c : url)
        if (static_cast<unsigned char>(c) <= 0x20 || static_cast<unsigned char>(c) >= 0x7f ||
            c == '#')
            return false;
    return true;
}

std::vector<std::string> metadata_urls(std::string_view issuer) {
    if (!is_https_url(issuer) || issuer.find('?') != std::string_view::npos) return {};
    auto rest = issuer.substr(8);
    auto slash = rest.find('/');
    std::string authority(rest.substr(0, slash));
    std::string path(slash == std::string_view::npos ? std::string_view{}
                                                     : trim_slash(rest.substr(slash)));
    std::vector<std::string> urls;
    urls.push_back("https://" + authority + "/.well-known/oauth-authorization-server" + path);
    urls.push_back("https://" + authority + path + "/.well-known/openid-configuration");
    return urls;
}

std::variant<AsMetadata, std::string> parse_metadata(std::string_view body,
                                                     std::string_view expected_issuer,
                                                     bool allow_http) {
    std::string why;
    auto parsed = detail::parse_object(body, why, 8);
    if (!parsed) return "the metadata document is " + why;
    const auto& j = *parsed;
    AsMetadata m;
    auto iss = j.find("issuer");
    if (iss == j.end() || !iss->is_string()) return std::string("the metadata has no issuer");
    m.issuer = iss->get<std::string>();
    if (trim_slash(m.issuer) != trim_slash(expected_issuer))
        return "the metadata's issuer \"" + sanitize_remote_text(m.issuer, 200) +
               "\" is not the configured issuer \"" + std::string(expected_issuer) +
               "\" (RFC 8414 §3.3; check oauth.issuer)";

    auto pick = [&](const nlohmann::json& obj, const char* name) -> std::optional<std::string> {
        auto it = obj.find(name);
        if (it == obj.end() || !it->is_string()) return std::nullopt;
        return it->get<std::string>();
    };
    std::optional<std::string> endpoint;
    if (auto al = j.find("mtls_endpoint_aliases"); al != j.end()) {
        if (!al->is_object())
            return std::string("the metadata's mtls_endpoint_aliases is not an object");
        if (auto e = pick(*al, "token_endpoint")) {
            endpoint = e;
            m.from_mtls_alias = true;
        }
    }
    if (!endpoint) endpoint = pick(j, "token_endpoint");
    if (!endpoint) return std::string("the metadata names no token_endpoint");
    if (!is_https_url(*endpoint, allow_http))
        return "the metadata's token endpoint \"" + sanitize_remote_text(*endpoint, 200) +
               "\" is not an https URL";
    m.token_endpoint = *endpoint;

    if (auto am = j.find("token_endpoint_auth_methods_supported"); am != j.end()) {
        if (!am->is_array())
            return std::string("token_endpoint_auth_methods_supported is not an array");
        for (const auto& v : *am)
            if (v.is_string() && m.auth_methods.size() < 64)
                m.auth_methods.push_back(sanitize_remote_text(v.get<std::string>(), 64));
    }
    if (auto bt = j.find("tls_client_certificate_bound_access_tokens"); bt != j.end())
        m.bound_tokens = bt->is_boolean() && bt->get<bool>();
    return m;
}

}  // namespace mtls::token
