// One client-credentials token request (RFC 6749 §4.4) over mutual TLS (RFC 8705 §2):
// the form body, the blocking HTTPS call (common/http_client, the identity's key on the
// SSL_CTX), interpretation of the answer, and the binding check of the token.
#pragma once

#include "agent/identity/identity.hpp"
#include "agent/token/jwt_binding.hpp"
#include "agent/token/token_response.hpp"
#include "agent/token/token_source.hpp"
#include "common/http_client.hpp"
#include "config/config.hpp"

#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace mtls::token {

// application/x-www-form-urlencoded (URL spec): ALPHA DIGIT * - . _ kept, everything else
// %XX (upper-case hex; space as %20, which every form decoder reads).
std::string form_encode(std::string_view value);
std::string form_body(const std::vector<std::pair<std::string, std::string>>& fields);

// grant_type=client_credentials&client_id=…[&scope=…][&resource=…]*[&audience=…]
std::string token_request_body(const config::TokenProfile& profile);

// What the error hints say about the client certificate.
struct ClientCertInfo {
    std::string subject;  // RFC 2253 one-line
    std::string serial;   // hex
    std::string x5t;      // base64url SHA-256 of the DER
};
ClientCertInfo describe_client_cert(const identity::Identity& id);

// The scope tokens of `requested` that `granted` lacks (RFC 6749 §3.3: space-separated,
// order free), e.g. a narrower grant.
std::vector<std::string> scope_missing(std::string_view requested, std::string_view granted);

struct ObtainedToken {
    TokenResponse response;
    BindingCheck::Result binding = BindingCheck::Result::opaque;
    std::chrono::seconds lifetime{0};  // expires_in, shortened to the JWT's exp if earlier
};

// Interprets the token endpoint's answer (pure; no I/O). Success: HTTP 200 with a valid
// token response whose binding check passes. Errors carry the OAuth error code when the AS
// sent a standard one (with error_description and a hint), else one of errc::*.
std::variant<ObtainedToken, TokenError> interpret_token_answer(
    long status, std::string_view body, const config::TokenProfile& profile,
    const ClientCertInfo& cert, const ResponseLimits& limits,
    std::chrono::system_clock::time_point now = std::chrono::system_clock::now());

// http::Error (no answer at all) as a TokenError; `what` says which call ("token request",
// "metadata request").
TokenError from_http_error(const http::Error& e, std::string_view what);

struct RequestSettings {
    http::ServerTrust trust;  // who the AS is (oauth.ca_file)
    std::chrono::milliseconds timeout{15000};
    std::size_t max_response_bytes = 64 * 1024;
    ResponseLimits limits;
    bool allow_http = false;  // tests of plain peers only
};

// The blocking call: POSTs the request to `endpoint` presenting `id`'s certificate and key.
// Never throws.
std::variant<ObtainedToken, TokenError> request_token(const std::string& endpoint,
                                                      const config::TokenProfile& profile,
                                                      const identity::Identity& id,
                                                      const RequestSettings& settings);

}  // namespace mtls::token
