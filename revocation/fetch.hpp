// Plain-HTTP fetches of OCSP responses and CRLs (libcurl). Revocation sources are http://
// by design (RFC 5280 §4.2.1.13, RFC 6960 appendix A: the answers are signed, and https
// would need a revocation check of its own); https:// URLs are refused. No proxy, no
// redirects, a whole-transfer timeout and a size cap.
#pragma once

#include <chrono>
#include <cstddef>
#include <stdexcept>
#include <string>

namespace mtls::revocation {

struct FetchLimits {
    std::chrono::milliseconds timeout{5000};
    std::size_t max_bytes = 1u << 20;
};

// Any failure to get a 200 response with a body (connect, timeout, too large, HTTP status).
class FetchError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

// POST `body` with Content-Type `content_type` (empty: GET) and return the response body.
std::string http_fetch(const std::string& url, const std::string& body,
                       const std::string& content_type, const FetchLimits& limits);

}  // namespace mtls::revocation
