// The errors the proxy answers to a local app: a stable `error` code, an HTTP status and a
// human `message` saying what failed, as a JSON body:
//   {"error":"upstream_tls","message":"certificate verify failed for api.partner-a.example (…)"}
// Messages never contain tokens, keys or PINs.
#pragma once

#include "agent/net/asio.hpp"

#include <string>

namespace mtls::proxy {

struct ProxyError {
    net::http::status status = net::http::status::bad_gateway;
    std::string code;     // bad_request, no_route, upstream_tls, …
    std::string message;  // human-readable, what failed and what to do

    explicit operator bool() const { return !code.empty(); }
};

// The stable codes, with their status.
ProxyError bad_request(std::string message);                // 400
ProxyError forbidden(std::string message);                  // 403 caller_not_allowed
ProxyError no_route(std::string message);                   // 404
ProxyError method_not_allowed(std::string message);         // 405
ProxyError payload_too_large(std::string message);          // 413 body_too_large
ProxyError headers_too_large(std::string message);          // 431
ProxyError expectation_failed(std::string message);         // 417
ProxyError request_timeout(std::string message);            // 408
ProxyError authorization_not_allowed(std::string message);  // 400
ProxyError ambiguous_path(std::string message);             // 400
ProxyError host_not_allowed(std::string message);           // 403 (DNS rebinding)
ProxyError cross_site_request(std::string message);         // 403 (a web page's request)
ProxyError upstream_connect(std::string message);           // 502
ProxyError upstream_tls(std::string message);               // 502
// upstream_tls for a TLS alert the partner sent (its RFC 8446 name), with what it means.
ProxyError upstream_tls_alert(const std::string& authority, const std::string& alert);
// The partner's chain is revoked, or has no verified status under revocation = "hard-fail".
ProxyError upstream_revocation(std::string message);        // 502
ProxyError upstream_reset(std::string message);             // 502
ProxyError upstream_bad_response(std::string message);      // 502
ProxyError no_identity(std::string message);                // 503
ProxyError identity_compromised(std::string message);       // 503 (our key burnt, re-enrolling)
ProxyError token_unavailable(std::string message);          // 503
ProxyError pool_exhausted(std::string message);             // 503 upstream_busy
ProxyError upstream_timeout(std::string message);           // 504

// The JSON body for an error.
std::string error_body(const ProxyError& e);

// A complete response for an error; keep_alive false adds `Connection: close`.
net::http::response<net::http::string_body> error_response(const ProxyError& e, unsigned version,
                                                           bool keep_alive);

}  // namespace mtls::proxy
