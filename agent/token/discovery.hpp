// RFC 8414 discovery over HTTPS (blocking, libcurl): finds the AS's metadata document
// for an issuer and returns the token endpoint to use (see metadata.hpp for the rules).
#pragma once

#include "agent/token/metadata.hpp"
#include "agent/token/token_source.hpp"
#include "common/http_client.hpp"

#include <chrono>
#include <string>
#include <variant>

namespace mtls::token {

// Discovery (blocking, libcurl): tries metadata_urls(issuer) in order — the next one only
// when the previous answered 404 (or another 4xx) — and parses the first document found.
// No client certificate is presented (metadata is public). Never throws.
std::variant<AsMetadata, TokenError> discover(const std::string& issuer,
                                              const http::ServerTrust& trust,
                                              std::chrono::milliseconds timeout);

}  // namespace mtls::token
