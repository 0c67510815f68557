#include "agent/proxy/errors.hpp"

#include <nlohmann/json.hpp>

namespace mtls::proxy {
namespace {
using net::http::status;
ProxyError make(status s, const char* code, std::string message) {
    return ProxyError{s, code, std::move(message)};
}
}  // namespace

ProxyError bad_request(std::string m) {
    return make(status::bad_request, "bad_request", std::move(m));
}
ProxyError forbidden(std::string m) {
    return make(status::forbidden, "caller_not_allowed", std::move(m));
}
ProxyError no_route(std::string m) {
    return make(status::not_found, "no_route", std::move(m));
}
ProxyError method_not_allowed(std::string m) {
    return make(status::method_not_allowed, "method_not_allowed", std::move(m));
}
ProxyError payload_too_large(std::string m) {
    return make(status::payload_too_large, "body_too_large", std::move(m));
}
ProxyError headers_too_large(std::string m) {
    return make(status::request_header_fields_too_large, "headers_too_large", std::move(m));
}
ProxyError expectation_failed(std::string m) {
    return make(status::expectation_failed, "expectation_failed", std::move(m));
}
ProxyError request_timeout(std::string m) {
    return make(status::request_timeout, "request_timeout", std::move(m));
}
ProxyError authorization_not_allowed(std::string m) {
    return make(status::bad_request, "authorization_not_allowed", std::move(m));
}
ProxyError ambiguous_path(std::string m) {
    return make(status::bad_request, "ambiguous_path", std::move(m));
}
ProxyError host_not_allowed(std::string m) {
    return make(status::forbidden, "host_not_allowed", std::move(m));
}
ProxyError cross_site_request(std::string m) {
    return make(status::forbidden, "cross_site_request", std::move(m));
}
ProxyError upstream_connect(std::string m) {
    return make(status::bad_gateway, "upstream_connect", std::move(m));
}
ProxyError upstream_tls(std::string m) {
    return make(status::bad_gateway, "upstream_tls", std::move(m));
}
ProxyError upstream_revocation(std::string m) {
    return make(status::bad_gateway, "upstream_revocation", std::move(m));
}
ProxyError upstream_tls_alert(const std::string& authority, const std::string& alert) {
    std::string hint;
    if (alert == "unknown_ca")
        hint =
            "the partner does not trust the issuer of our certificate: check that it trusts "
            "our CA's root and that the agent sends the intermediates (mtls-agentctl cert)";
    else if (alert == "bad_certificate" || alert == "certificate_unknown" ||
             alert == "unsupported_certificate")
        hint =
            "the partner refused our certificate: check its key usage, extended key usage "
            "(clientAuth) and subject against what the partner registered";
    else if (alert == "certificate_expired")
        hint =
            "the partner says our certificate expired: check mtls-agentctl status and this "
            "host's clock";
    else if (alert == "certificate_revoked")
        hint = "the partner says our certificate is revoked: rotate (mtls-agentctl rotate)";
    else if (alert == "certificate_required")
        hint = "the partner wants a client certificate and got none";
    else if (alert == "access_denied")
        hint = "the partner's policy refused our certificate";
    else if (alert == "handshake_failure" || alert == "protocol_version" ||
             alert == "insufficient_security")
        hint = "no TLS version or cipher in common: check the route's tls_min_version";
    else
        hint = "the partner ended the TLS connection";
    return upstream_tls(authority + " sent the TLS alert " + alert + " — " + hint);
}
ProxyError upstream_reset(std::string m) {
    return make(status::bad_gateway, "upstream_reset", std::move(m));
}
ProxyError upstream_bad_response(std::string m) {
    return make(status::bad_gateway, "upstream_bad_response", std::move(m));
}
ProxyError no_identity(std::string m) {
    return make(status::service_unavailable, "no_identity", std::move(m));
}
ProxyError identity_compromised(std::string m) {
    return make(status::service_unavailable, "identity_compromised", std::move(m));
}
ProxyError token_unavailable(std::string m) {
    return make(status::service_unavailable, "token_unavailable", std::move(m));
}
ProxyError pool_exhausted(std::string m) {
    return make(status::service_unavailable, "upstream_busy", std::move(m));
}
ProxyError upstream_timeout(std::string m) {
    return make(status::gateway_timeout, "upstream_timeout", std::move(m));
}

std::string error_body(const ProxyError& e) {
    nlohmann::json j{{"error", e.code}, {"message", e.message}};
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

net::http::response<net::http::string_body> error_response(const ProxyError& e, unsigned version,
                                                           bool keep_alive) {
    net::http::response<net::http::string_body> res{e.status, version};
    res.set(net::http::field::content_type, "application/json");
    res.set(net::http::field::cache_control, "no-store");
    // A 503 is temporary (RFC 9110 §15.6.4): when to try again, for apps that honour it — a
    // second for a busy pool or listener, a few for an identity or token still coming.
    if (e.status == net::http::status::service_unavailable)
        res.set(net::http::field::retry_after,
                e.code == "upstream_busy" || e.code == "too_many_connections" ? "1" : "5");
    res.body() = error_body(e);
    res.keep_alive(keep_alive);
    res.prepare_payload();
    return res;
}

}  // namespace mtls::proxy
