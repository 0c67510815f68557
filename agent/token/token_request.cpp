#include "agent/token/token_request.hpp"

#include "agent/token/errors.hpp"
#include "common/log.hpp"
#include "common/x509_text.hpp"
#include "revocation/connection_check.hpp"

#include <openssl/bn.h>

#include <algorithm>

namespace mtls::token {
namespace {

using config::TokenProfile;

const char* method_name(TokenProfile::AuthMethod m) {
    return m == TokenProfile::AuthMethod::self_signed_tls_client_auth
               ? "self_signed_tls_client_auth"
               : "tls_client_auth";
}

std::string hint_for(const std::string& code, const TokenProfile& p, const ClientCertInfo& c) {
    if (code == "invalid_client") {
        std::string h = "the AS does not accept certificate " + c.subject + ", serial " + c.serial +
                        " for client_id " + p.client_id + " (" + method_name(p.auth_method) + "; ";
        if (p.auth_method == TokenProfile::AuthMethod::self_signed_tls_client_auth)
            h += "register the certificate's x5t#S256 " + c.x5t + " with the AS";
        else
            h += "check the client registration's subject/SAN and the AS's trusted CAs";
        return h + ")";
    }
    if (code == "invalid_scope")
        return "check scope \"" + p.scope + "\" of token profile " + p.name;
    if (code == "invalid_target") return "check resources/audience of token profile " + p.name;
    if (code == "unauthorized_client")
        return "client_id " + p.client_id + " may not use the client_credentials grant";
    if (code == "unsupported_grant_type") return "the AS does not support client_credentials";
    if (code == "invalid_request")
        return "the AS refused the request's form; check token profile " + p.name;
    if (code == "invalid_grant") return "the AS refused the grant for client_id " + p.client_id;
    return {};
}

}  // namespace

std::string form_encode(std::string_view value) {
    static constexpr char digits[] = "0123456789ABCDEF";
    std::string out;
    out.reserve(value.size() * 3);
    for (unsigned char c : value) {
        bool keep = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '*' || c == '-' || c == '.' || c == '_';
        if (keep) {
            out += static_cast<char>(c);
        } else {
            out += '%';
            out += digits[c >> 4];
            out += digits[c & 15];
        }
    }
    return out;
}

std::string form_body(const std::vector<std::pair<std::string, std::string>>& fields) {
    std::string out;
    for (const auto& [k, v] : fields) {
        if (!out.empty()) out += '&';
        out += form_encode(k);
        out += '=';
        out += form_encode(v);
    }
    return out;
}

std::string token_request_body(const TokenProfile& p) {
    std::vector<std::pair<std::string, std::string>> f;
    f.emplace_back("grant_type", "client_credentials");
    f.emplace_back("client_id", p.client_id);
    if (!p.scope.empty()) f.emplace_back("scope", p.scope);
    for (const auto& r : p.resources) f.emplace_back("resource", r);
    if (!p.audience.empty()) f.emplace_back("audience", p.audience);
    return form_body(f);
}

ClientCertInfo describe_client_cert(const identity::Identity& id) {
    auto serial = x509text::serial_hex(id.leaf());
    return ClientCertInfo{id.subject(), serial.empty() ? "?" : serial, id.x5t_s256()};
}

std::variant<ObtainedToken, TokenError> interpret_token_answer(
    long status, std::string_view body, const TokenProfile& p, const ClientCertInfo& cert,
    const ResponseLimits& limits, std::chrono::system_clock::time_point now) {
    // The caller names the profile (TokenCache: "access token for profile …: ").
    const std::string who = "token request (client_id " + p.client_id + ")";
    if (status != 200) {
        if (auto e = parse_error_response(body)) {
            std::string code = is_standard_oauth_error(e->error) ? e->error : errc::as_error;
            std::string msg = who + " refused: HTTP " + std::to_string(status) + " " + e->error;
            if (!e->description.empty()) msg += ": " + e->description;
            if (auto h = hint_for(e->error, p, cert); !h.empty()) msg += " — " + h;
            if (status >= 500) code = errc::as_error;
            return make_error(code, msg);
        }
        std::string msg = who + " failed: the AS answered HTTP " + std::to_string(status);
        if (status >= 300 && status < 400)
            msg += " (redirects are not followed; check the token endpoint URL)";
        else if (status >= 500)
            msg += " (the AS has a problem; retrying with backoff)";
        else if (status == 404)
            msg += " (check oauth.token_endpoint / oauth.issuer)";
        else if (status == 401 || status == 403)
            msg += " — " + hint_for("invalid_client", p, cert);
        return make_error(errc::as_error, msg);
    }
    auto parsed = parse_token_response(body, limits);
    if (auto* prob = std::get_if<ResponseProblem>(&parsed))
        return make_error(errc::bad_response, who + ": the AS's answer is unusable: " + prob->what);
    auto& r = std::get<TokenResponse>(parsed);
    ObtainedToken out;
    out.lifetime = r.expires_in;
    auto b = check_binding(r.access_token, cert.x5t);
    out.binding = b.result;
    switch (b.result) {
        case BindingCheck::Result::mismatch:
            return make_error(errc::token_not_bound,
                              who +
                                  ": the AS issued a token that is not bound to our "
                                  "certificate: " +
                                  b.detail +
                                  " (the AS must bind tokens to the TLS client certificate, "
                                  "RFC 8705 §3)");
        case BindingCheck::Result::unbound:
            return make_error(errc::token_not_bound,
                              who + ": " + b.detail +
                                  " (enable certificate-bound tokens for this client at the AS)");
        case BindingCheck::Result::malformed:
            return make_error(
                errc::token_malformed,
                who + ": the access token looks like a JWT but is malformed: " + b.detail);
        case BindingCheck::Result::opaque:
        case BindingCheck::Result::bound:
            break;
    }
    if (b.exp) {
        auto exp = std::chrono::system_clock::time_point(std::chrono::seconds(*b.exp));
        if (exp <= now)
            return make_error(errc::bad_response, who +
                                                      ": the AS issued an already expired JWT "
                                                      "(check the clocks of the AS and this host)");
        auto left = std::chrono::duration_cast<std::chrono::seconds>(exp - now);
        if (left < out.lifetime) out.lifetime = left;
    }
    out.response = std::move(r);
    return out;
}

std::vector<std::string> scope_missing(std::string_view requested, std::string_view granted) {
    auto tokens = [](std::string_view text) {
        std::vector<std::string> out;
        std::size_t i = 0;
        while (i < text.size()) {
            auto end = text.find(' ', i);
            if (end == std::string_view::npos) end = text.size();
            if (end > i) out.emplace_back(text.substr(i, end - i));
            i = end + 1;
        }
        return out;
    };
    const auto have = tokens(granted);
    std::vector<std::string> missing;
    for (auto& want : tokens(requested))
        if (std::find(have.begin(), have.end(), want) == have.end()) missing.push_back(want);
    return missing;
}

// RFC 6749 §5.1: the AS sends `scope` when it granted other than what was asked; without it
// the grant is the request. A narrower grant is no error, but calls needing the rest fail.
void warn_if_narrowed(const TokenProfile& profile, const ObtainedToken& t) {
    if (profile.scope.empty() || !t.response.scope) return;
    auto missing = scope_missing(profile.scope, *t.response.scope);
    if (missing.empty()) return;
    std::string list;
    for (const auto& m : missing) list += (list.empty() ? "" : " ") + m;
    log::warn("oauth.scope_narrowed", {{"profile", profile.name},
                                       {"requested", profile.scope},
                                       {"granted", *t.response.scope},
                                       {"not_granted", list}});
}

TokenError from_http_error(const http::Error& e, std::string_view what) {
    using K = http::Error::Kind;
    // e.what() is "<METHOD> <url> failed: <why>": `what` only says which step it was.
    std::string msg = std::string(what) + ": " + e.what();
    switch (e.kind()) {
        case K::timeout:
            return make_error(errc::as_timeout,
                              msg + " — the AS is slow or unreachable; check oauth.timeout");
        case K::untrusted_server:
            return make_error(errc::as_untrusted, msg + " — check oauth.ca_file");
        case K::too_large:
            return make_error(errc::bad_response, msg);
        case K::invalid_request:
            return make_error(errc::config_error, msg);
        case K::connect:
        case K::tls:
        case K::transport:
            break;
    }
    return make_error(errc::as_unreachable, msg + " — is the AS up and reachable?");
}

std::variant<ObtainedToken, TokenError> request_token(const std::string& endpoint,
                                                      const TokenProfile& profile,
                                                      const identity::Identity& id,
                                                      const RequestSettings& s) {
    try {
        http::Options o;
        o.trust = s.trust;
        std::vector<X509*> chain;
        for (const auto& c : id.chain()) chain.push_back(c.get());
        o.identity = http::ClientIdentity::make(id.leaf(), chain, id.key());
        o.timeout = s.timeout;
        o.connect_timeout =
            std::min<std::chrono::milliseconds>(s.timeout, std::chrono::milliseconds(10000));
        o.max_response_bytes = s.max_response_bytes;
        o.allow_http = s.allow_http;
        if (profile.revocation != config::RevocationPolicy::off)
            o.check_connection = revocation::connection_check(
                profile.revocation == config::RevocationPolicy::hard_fail
                    ? revocation::Policy::hard_fail
                    : revocation::Policy::soft_fail,
                "oauth:" + profile.name, "authorization server");
        http::Request req;
        req.method = "POST";
        req.url = endpoint;
        req.log_part = "oauth";
        req.headers = {{"Content-Type", "application/x-www-form-urlencoded"},
                       {"Accept", "application/json"}};
        req.body = token_request_body(profile);
        auto resp = http::fetch(std::move(o), req);
        auto answer = interpret_token_answer(resp.status, resp.body, profile,
                                             describe_client_cert(id), s.limits);
        if (const auto* t = std::get_if<ObtainedToken>(&answer)) warn_if_narrowed(profile, *t);
        return answer;
    } catch (const http::Error& e) {
        return from_http_error(e, "token request");
    } catch (const revocation::Refused& e) {
        return make_error(errc::as_untrusted, e.what());
    } catch (const std::exception& e) {
        return make_error(errc::as_unreachable,
                          "token request to " + endpoint + " failed: " + e.what());
    }
}

}  // namespace mtls::token
