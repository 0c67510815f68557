#include "tests/sandbox/partner_api.hpp"

#include "tests/sandbox/echo.hpp"
#include "tests/sandbox/pem.hpp"
#include "tests/sandbox/unsolicited.hpp"

#include <algorithm>

namespace mtls::sandbox {

nlohmann::json TokenView::to_json() const {
    nlohmann::json j = {
        {"present", present}, {"valid", valid}, {"bound_to_this_certificate", valid && bound}};
    if (!why.empty()) j["error"] = why;
    if (valid) {
        j["client_id"] = claims.client_id;
        j["subject"] = claims.client_id;
        j["scope"] = claims.scope;
        j["aud"] = claims.aud;
        j["cnf_x5t#S256"] = claims.cnf_x5t;
        j["expires_at"] = claims.exp;
    }
    return j;
}

nlohmann::json cert_json(X509* cert) {
    const X509_NAME* s = X509_get_subject_name(cert);
    return {{"common_name", name_entry(s, NID_commonName)},
            {"organization", name_entry(s, NID_organizationName)},
            {"organizational_unit", name_entry(s, NID_organizationalUnitName)},
            {"serial", serial_hex(cert)},
            {"serial_number", serial_hex(cert)},
            {"not_before", asn1_time_iso(X509_get0_notBefore(cert))},
            {"not_after", asn1_time_iso(X509_get0_notAfter(cert))},
            {"subject", subject_rfc4514(s)},
            {"issuer", subject_rfc4514(X509_get_issuer_name(cert))},
            {"x5t#S256", x5t_s256(cert)}};
}

TokenView inspect_token(Exchange& ex, const TokenService& tokens, Stats& stats) {
    TokenView v;
    auto auth = ex.header(http::field::authorization);
    if (auth.empty()) return v;
    v.present = true;
    std::string token;
    if (auth.size() > 7 && std::equal(auth.begin(), auth.begin() + 7, "bearer ",
                                      [](char a, char b) { return ::tolower(a) == b; }))
        token = auth.substr(7);
    while (!token.empty() && token.front() == ' ') token.erase(token.begin());
    if (token.empty()) {
        v.why = "Authorization is not a Bearer token";
        ++stats.token_invalid;
        return v;
    }
    auto r = tokens.check(token, v.claims, v.why);
    if (r != TokenService::Result::ok) {
        ++stats.token_invalid;
        return v;
    }
    v.valid = true;
    ex.token_cnf_x5t = v.claims.cnf_x5t;
    v.bound = !ex.peer.x5t.empty() && v.claims.cnf_x5t == ex.peer.x5t;
    ex.bound = v.bound;
    if (v.bound) {
        ++stats.bound_ok;
    } else {
        ++stats.bound_mismatch;
        v.why = ex.peer.x5t.empty()
                    ? "token is certificate-bound but the connection has no client certificate"
                    : "token is bound to a different certificate than this connection's";
    }
    return v;
}

PartnerApi::PartnerApi(const Options& options, const TokenService& tokens, Stats& stats)
    : opt_(options), tokens_(tokens), stats_(stats) {}

Task<void> PartnerApi::drain(Exchange& ex) {
    (void)co_await ex.read_body(16u << 20);
}

Task<void> PartnerApi::handle(Exchange& ex) {
    auto path = ex.path();
    if (path.starts_with("/api/secure/") || path == "/api/secure") {
        ++stats_.api_requests;
        co_await secure(ex);
    } else if (path.starts_with("/echo/")) {
        ++stats_.echo_requests;
        auto token = inspect_token(ex, tokens_, stats_);
        auto extra = unsolicited_for(ex);
        co_await handle_echo(ex, token);
        co_await send_unsolicited(ex, extra, stats_);
    } else if (path == "/") {
        co_await drain(ex);
        {
            nlohmann::json body_ = {
                {"service", "partner-sandbox API"},
                {"endpoints",
                 {"/api/secure/data", "/echo/headers", "/echo/body", "/echo/bytes/<n>",
                  "/echo/status/<code>", "/echo/slow/<ms>", "/echo/reset"}}};
            co_await ex.send_json(http::status::ok, std::move(body_));
        }
    } else {
        co_await drain(ex);
        co_await ex.send_error(http::status::not_found, "Not found");
    }
}

Task<void> PartnerApi::secure(Exchange& ex) {
    co_await drain(ex);
    X509* cert = ex.peer.cert.get();
    if (!cert) {
        co_await ex.send_error(http::status::unauthorized, "Client certificate required");
        co_return;
    }
    auto cn = name_entry(X509_get_subject_name(cert), NID_commonName);
    if (!opt_.api_allow_cn.empty() && std::find(opt_.api_allow_cn.begin(), opt_.api_allow_cn.end(),
                                                cn) == opt_.api_allow_cn.end()) {
        co_await ex.send_error(http::status::forbidden, "Certificate not authorized");
        co_return;
    }
    auto token = inspect_token(ex, tokens_, stats_);
    std::string problem;
    if (!token.present) {
        ++stats_.token_missing;
        if (!opt_.api_token_optional) problem = "missing";
    } else if (!token.valid || !token.bound) {
        problem = token.why;
    } else if (!opt_.api_audience.empty() &&
               std::find(token.claims.aud.begin(), token.claims.aud.end(), opt_.api_audience) ==
                   token.claims.aud.end()) {
        problem = "token audience does not include " + opt_.api_audience;
    }
    if (!problem.empty()) {
        auto res = ex.make(http::status::unauthorized);
        res.set(http::field::content_type, "application/json");
        if (problem == "missing") {
            // RFC 6750 §3.1: no error code when the request carried no credentials.
            res.set(http::field::www_authenticate, "Bearer realm=\"partner-sandbox\"");
            res.body() = nlohmann::json{{"error", "Bearer token required"}}.dump();
        } else {
            res.set(http::field::www_authenticate,
                    "Bearer realm=\"partner-sandbox\", error=\"invalid_token\", "
                    "error_description=\"" +
                        problem + "\"");
            res.body() = nlohmann::json{{"error", "invalid_token"},
                                        {"error_description", problem},
                                        {"token", token.to_json()}}
                             .dump();
        }
        co_await ex.send(std::move(res));
        co_return;
    }
    if (ex.path() != "/api/secure/data") {
        co_await ex.send_error(http::status::not_found, "Not found");
        co_return;
    }
    {
        nlohmann::json body_ = {
            {"message", "Secure data"},
            {"client", cn},
            {"client_certificate", cert_json(cert)},
            {"tls", {{"version", ex.peer.version}, {"resumed", ex.peer.resumed}}},
            {"token", token.to_json()}};
        co_await ex.send_json(http::status::ok, std::move(body_));
    }
}

}  // namespace mtls::sandbox
