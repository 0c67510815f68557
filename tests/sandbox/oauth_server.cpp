#include "tests/sandbox/oauth_server.hpp"

#include "common/log.hpp"
#include "tests/sandbox/form.hpp"
#include "tests/sandbox/pem.hpp"

#include <boost/asio/steady_timer.hpp>

#include <algorithm>
#include <set>

namespace mtls::sandbox {
namespace {

bool is_form(const std::string& content_type) {
    auto t = content_type.substr(0, content_type.find(';'));
    while (!t.empty() && t.back() == ' ') t.pop_back();
    std::transform(t.begin(), t.end(), t.begin(), ::tolower);
    return t == "application/x-www-form-urlencoded";
}

std::vector<std::string> split_scope(const std::string& s) {
    std::vector<std::string> out;
    std::string cur;
    for (char c : s + " ") {
        if (c == ' ') {
            if (!cur.empty()) out.push_back(cur);
            cur.clear();
        } else {
            cur += c;
        }
    }
    return out;
}

// RFC 8707: an absolute URI without a fragment.
bool valid_resource(const std::string& r) {
    auto colon = r.find(':');
    if (colon == std::string::npos || colon == 0) return false;
    for (size_t i = 0; i < colon; ++i)
        if (!std::isalnum(static_cast<unsigned char>(r[i])) && r[i] != '+' && r[i] != '-' &&
            r[i] != '.')
            return false;
    return r.find('#') == std::string::npos &&
           std::none_of(r.begin(), r.end(), [](char c) { return c == ' ' || c < 0x21; });
}

std::string hostile_body(const std::string& variant) {
    if (variant == "truncated")
        return R"({"access_token":"eyJhbGciOi","token_type":"Bearer","expires_in":3)";
    if (variant == "deep") return std::string(100000, '[') + std::string(100000, ']');
    if (variant == "types")
        return R"({"access_token":12345,"token_type":["Bearer"],"expires_in":"soon","scope":{}})";
    if (variant == "huge")
        return R"({"access_token":")" + std::string(8u << 20, 'A') +
               R"(","token_type":"Bearer","expires_in":18446744073709551616999})";
    if (variant == "not-json") return "<html><body>Service Unavailable</body></html>";
    if (variant == "no-token") return R"({"token_type":"Bearer","expires_in":300})";
    return "";  // empty
}

}  // namespace

OAuthServer::OAuthServer(const DevCa& ca, ClientRegistry clients, TokenService& tokens,
                         const JwtSigner& signer, Modes& modes, Stats& stats)
    : ca_(ca),
      clients_(std::move(clients)),
      tokens_(tokens),
      signer_(signer),
      modes_(modes),
      stats_(stats) {}

void OAuthServer::set_base_url(std::string url) {
    base_ = std::move(url);
    tokens_.set_issuer(base_);
}

nlohmann::json OAuthServer::metadata() const {
    return {
        {"issuer", base_},
        {"token_endpoint", base_ + "/token"},
        {"jwks_uri", base_ + "/jwks"},
        {"introspection_endpoint", base_ + "/introspect"},
        {"grant_types_supported", {"client_credentials"}},
        {"response_types_supported", nlohmann::json::array()},
        {"token_endpoint_auth_methods_supported",
         {"tls_client_auth", "self_signed_tls_client_auth"}},
        {"introspection_endpoint_auth_methods_supported",
         {"tls_client_auth", "self_signed_tls_client_auth"}},
        {"tls_client_certificate_bound_access_tokens", true},
        {"mtls_endpoint_aliases",
         {{"token_endpoint", base_ + "/mtls/token"},
          {"introspection_endpoint", base_ + "/mtls/introspect"}}},
        {"token_endpoint_auth_signing_alg_values_supported", {"ES256"}},
    };
}

Task<void> OAuthServer::oauth_error(Exchange& ex, const std::string& code,
                                    const std::string& description) {
    ++stats_.token_errors;
    auto status = code == "invalid_client"            ? http::status::unauthorized
                  : code == "server_error"            ? http::status::internal_server_error
                  : code == "temporarily_unavailable" ? http::status::service_unavailable
                                                      : http::status::bad_request;
    auto res = ex.make(status);
    res.set(http::field::content_type, "application/json");
    res.set(http::field::cache_control, "no-store");
    res.set(http::field::pragma, "no-cache");
    nlohmann::json body = {{"error", code}};
    if (!description.empty()) body["error_description"] = description;
    res.body() = body.dump();
    log::info("sandbox_oauth_error", {{"error", code}, {"description", description}});
    co_await ex.send(std::move(res));
}

Task<void> OAuthServer::handle(Exchange& ex) {
    auto path = ex.path();
    auto method = ex.req().method();
    if (path == "/.well-known/oauth-authorization-server") {
        co_await ex.send_json(http::status::ok, metadata());
    } else if (path == "/jwks") {
        co_await ex.send_json(http::status::ok, signer_.jwks());
    } else if (path == "/token" || path == "/mtls/token") {
        if (method != http::verb::post) {
            {
                nlohmann::json body_ = {{"error", "invalid_request"},
                                        {"error_description", "the token endpoint takes POST"}};
                co_await ex.send_json(http::status::method_not_allowed, std::move(body_));
            }
            co_return;
        }
        co_await token(ex);
    } else if (path == "/introspect" || path == "/mtls/introspect") {
        if (method != http::verb::post) {
            co_await ex.send_error(http::status::method_not_allowed, "invalid_request");
            co_return;
        }
        co_await introspect(ex);
    } else {
        co_await ex.send_error(http::status::not_found, "not found");
    }
}

Task<void> OAuthServer::fault(Exchange& ex, const AsMode& mode, bool& handled) {
    handled = true;
    if (mode.kind == "down") {  // connections that were open before the listener closed
        ex.close = true;
        ex.reset = true;
        beast::error_code ec;
        beast::get_lowest_layer(ex.stream()).socket().close(ec);
        co_return;
    }
    if (mode.kind == "slow") {
        asio::steady_timer t(co_await asio::this_coro::executor);
        t.expires_after(mode.delay);
        co_await t.async_wait(asio::use_awaitable);
        handled = false;  // then answer normally
        co_return;
    }
    (void)co_await ex.read_body(1u << 20);
    if (mode.kind == "400") {
        co_await oauth_error(ex, "invalid_request", "sandbox fault mode 400");
    } else if (mode.kind == "401") {
        co_await oauth_error(ex, "invalid_client", "sandbox fault mode 401");
    } else if (mode.kind == "500") {
        co_await oauth_error(ex, "server_error", "sandbox fault mode 500");
    } else if (mode.kind == "error") {
        co_await oauth_error(ex, mode.error, "sandbox fault mode error=" + mode.error);
    } else if (mode.kind == "hostile-json") {
        auto res = ex.make(http::status::ok);
        res.set(http::field::content_type, "application/json");
        res.set(http::field::cache_control, "no-store");
        res.body() = hostile_body(mode.variant);
        co_await ex.send(std::move(res));
    } else {
        handled = false;
    }
}

Task<void> OAuthServer::token(Exchange& ex) {
    ++stats_.token_requests;
    auto mode = modes_.as();
    if (mode.kind != "normal") {
        bool handled = false;
        co_await fault(ex, mode, handled);
        if (handled) co_return;
    }
    if (!is_form(ex.header(http::field::content_type))) {
        (void)co_await ex.read_body(1u << 20);
        co_await oauth_error(ex, "invalid_request",
                             "Content-Type must be application/x-www-form-urlencoded");
        co_return;
    }
    auto body = co_await ex.read_body(64 * 1024);
    if (!body) {
        co_await oauth_error(ex, "invalid_request", "request body too large");
        co_return;
    }
    auto form = Form::parse(*body);
    if (!form) {
        co_await oauth_error(ex, "invalid_request", "malformed form body");
        co_return;
    }
    for (const char* single : {"grant_type", "client_id", "scope"})
        if (form->count(single) > 1) {
            co_await oauth_error(ex, "invalid_request",
                                 std::string("parameter repeated: ") + single);
            co_return;
        }
    auto grant = form->get("grant_type");
    if (!grant) {
        co_await oauth_error(ex, "invalid_request", "grant_type is missing");
        co_return;
    }
    auto client_id = form->get("client_id");
    if (!client_id || client_id->empty()) {
        co_await oauth_error(ex, "invalid_request", "client_id is missing (RFC 8705 §2)");
        co_return;
    }
    if (!ex.header(http::field::authorization).empty()) {
        co_await oauth_error(ex, "invalid_request",
                             "use exactly one client authentication method (mTLS), not an "
                             "Authorization header as well");
        co_return;
    }
    auto client = clients_.find(*client_id);
    if (!client) {
        co_await oauth_error(ex, "invalid_client", "unknown client_id " + *client_id);
        co_return;
    }
    std::string why_ca;
    bool chains = ex.peer.cert && ca_.verify(ex.peer.cert.get(), ex.peer.chain.get(), why_ca);
    auto why = ClientRegistry::authenticate(*client, ex.peer.cert.get(), chains);
    if (!why.empty()) {
        co_await oauth_error(ex, "invalid_client", "client authentication failed: " + why);
        co_return;
    }
    if (*grant != "client_credentials") {
        co_await oauth_error(ex, "unsupported_grant_type",
                             "only client_credentials is supported, not " + *grant);
        co_return;
    }
    if (std::find(client->grant_types.begin(), client->grant_types.end(), "client_credentials") ==
        client->grant_types.end()) {
        co_await oauth_error(ex, "unauthorized_client",
                             "client is not allowed to use client_credentials");
        co_return;
    }
    TokenClaims claims;
    claims.client_id = *client_id;
    claims.cnf_x5t = ex.peer.x5t;
    auto requested = split_scope(form->get("scope").value_or(""));
    if (client->scopes) {
        auto allowed = [&](const std::string& s) {
            return std::find(client->scopes->begin(), client->scopes->end(), s) !=
                   client->scopes->end();
        };
        if (client->narrow_scope) {
            std::erase_if(requested, [&](const std::string& s) { return !allowed(s); });
        } else {
            for (auto& s : requested)
                if (!allowed(s)) {
                    co_await oauth_error(ex, "invalid_scope", "scope not allowed: " + s);
                    co_return;
                }
        }
        if (requested.empty()) requested = *client->scopes;
    }
    for (auto& s : requested) claims.scope += (claims.scope.empty() ? "" : " ") + s;
    for (auto& r : form->all("resource")) {
        if (!valid_resource(r)) {
            co_await oauth_error(ex, "invalid_target",
                                 "resource must be an absolute URI without a fragment: " + r);
            co_return;
        }
        if (!client->resources.empty() &&
            std::find(client->resources.begin(), client->resources.end(), r) ==
                client->resources.end()) {
            co_await oauth_error(ex, "invalid_target", "resource not allowed for client: " + r);
            co_return;
        }
        claims.aud.push_back(r);
    }
    for (auto& a : form->all("audience")) claims.aud.push_back(a);

    auto token = tokens_.issue(claims);
    ++stats_.tokens_issued;
    log::info("sandbox_token_issued", {{"client_id", claims.client_id},
                                       {"cnf_x5t", claims.cnf_x5t},
                                       {"scope", claims.scope},
                                       {"token", log::redact(token)}});
    nlohmann::json out = {{"access_token", token},
                          {"token_type", "Bearer"},
                          {"expires_in", tokens_.lifetime().count()}};
    if (!claims.scope.empty()) out["scope"] = claims.scope;
    auto res = ex.make(http::status::ok);
    res.set(http::field::content_type, "application/json");
    res.set(http::field::cache_control, "no-store");
    res.set(http::field::pragma, "no-cache");
    res.body() = out.dump();
    co_await ex.send(std::move(res));
}

Task<void> OAuthServer::introspect(Exchange& ex) {
    ++stats_.introspections;
    auto body = co_await ex.read_body(64 * 1024);
    auto form = body ? Form::parse(*body) : std::nullopt;
    if (!is_form(ex.header(http::field::content_type)) || !form || !form->get("token")) {
        {
            nlohmann::json body_ = {{"error", "invalid_request"},
                                    {"error_description", "form body with token= required"}};
            co_await ex.send_json(http::status::bad_request, std::move(body_));
        }
        co_return;
    }
    // The caller authenticates with mTLS: a certificate from the sandbox CA, or a
    // registered client's certificate.
    std::string why;
    bool ok = ex.peer.cert && ca_.verify(ex.peer.cert.get(), ex.peer.chain.get(), why);
    if (!ok && ex.peer.cert)
        if (auto id = form->get("client_id"))
            if (auto c = clients_.find(*id))
                ok = ClientRegistry::authenticate(*c, ex.peer.cert.get(), false).empty();
    if (!ok) {
        {
            nlohmann::json body_ = {
                {"error", "invalid_client"},
                {"error_description", "introspection requires a client certificate"}};
            co_await ex.send_json(http::status::unauthorized, std::move(body_));
        }
        co_return;
    }
    TokenClaims claims;
    if (tokens_.check(*form->get("token"), claims, why) != TokenService::Result::ok) {
        {
            nlohmann::json body_ = {{"active", false}};
            co_await ex.send_json(http::status::ok, std::move(body_));
        }
        co_return;
    }
    auto j = claims.to_json(tokens_.issuer());
    j["active"] = true;
    j["token_type"] = "Bearer";
    co_await ex.send_json(http::status::ok, j);
}

}  // namespace mtls::sandbox
