// RFC 8414 authorization server metadata: where to find it for an issuer, and strict
// parsing of the document (pure; fuzzed). The token endpoint we use is
// mtls_endpoint_aliases.token_endpoint (RFC 8705 §5) when present, else token_endpoint.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace mtls::token {

struct AsMetadata {
    std::string issuer;
    std::string token_endpoint;  // the one to use (mTLS alias preferred)
    bool from_mtls_alias = false;
    std::vector<std::string> auth_methods;  // token_endpoint_auth_methods_supported (may be empty)
    bool bound_tokens = false;              // tls_client_certificate_bound_access_tokens
};

// The URLs to try, in order: RFC 8414 §3.1 (well-known segment inserted between host and
// path), then OpenID Connect Discovery (issuer + "/.well-known/openid-configuration").
// Empty when the issuer is not an https URL without query and fragment.
std::vector<std::string> metadata_urls(std::string_view issuer);

// Parses a metadata document. `expected_issuer` must equal the document's issuer (RFC 8414
// §3.3; compared exactly, a trailing '/' excepted). Endpoints must be https URLs.
// allow_http: accept http:// endpoints (tests of plain peers only).
std::variant<AsMetadata, std::string> parse_metadata(std::string_view body,
                                                     std::string_view expected_issuer,
                                                     bool allow_http = false);

// An absolute https URL without fragment, with a host; ≤ 2048 bytes.
bool is_https_url(std::string_view url, bool allow_http = false);

}  // namespace mtls::token
