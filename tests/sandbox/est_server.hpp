// EST server (RFC 7030) under /.well-known/est/[<label>/]: cacerts, csrattrs, simpleenroll,
// simplereenroll, with the fault and proof-of-possession modes of modes.hpp.
#pragma once

#include "common/ossl.hpp"
#include "tests/sandbox/ca.hpp"
#include "tests/sandbox/http_auth.hpp"
#include "tests/sandbox/https_server.hpp"
#include "tests/sandbox/modes.hpp"
#include "tests/sandbox/options.hpp"
#include "tests/sandbox/stats.hpp"

#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace mtls::sandbox {

class EstServer {
  public:
    EstServer(const DevCa& ca, const Options& options, Modes& modes, Stats& stats);
    Task<void> handle(Exchange& ex);

    // The DER CsrAttrs for a spec: "none" (empty), "default", or a comma-separated list of
    // items "OID" (an OID to include) and "OID=OID" (an attribute with one OID value);
    // OIDs in dotted form or OpenSSL names (challengePassword, ecdsa-with-SHA256, …).
    static std::string csrattrs_der(const std::string& spec, PopMode pop);

  private:
    Task<void> enroll(Exchange& ex, bool reenroll);
    // Which HTTP authentication this request needs besides TLS (AuthScheme::none: none), by
    // the modes: reenroll_auth for a client with a certificate from this CA, enroll_auth
    // digest for one without an accepted certificate.
    AuthScheme http_auth_needed(const EstMode& mode, bool reenroll, bool cert_from_ca,
                                bool cert_from_bootstrap) const;
    // 401 with the challenges of `scheme` (Basic, or Digest with SHA-256 and MD5).
    Task<void> unauthorized(Exchange& ex, AuthScheme scheme, const EstMode& mode, std::string why,
                            bool stale);

    const DevCa& ca_;
    const Options& opt_;
    Modes& modes_;
    Stats& stats_;
    std::vector<std::pair<std::string, std::string>> credentials_;
    ossl::X509StorePtr bootstrap_;
    std::unique_ptr<HttpAuthenticator> http_auth_;
};

// base64 PKCS#7 certs-only (degenerate SignedData) holding `certs`, lines of 64 columns.
std::string pkcs7_certs_only_b64(const std::vector<X509*>& certs);
// The same, as DER.
std::string pkcs7_certs_only_der(const std::vector<X509*>& certs);

// Size of the est_variant=huge answer (base64 lines of 64 + newline): far above any
// client's sane limit (the agent's est.max_response_bytes defaults to 1 MiB).
inline constexpr std::size_t kHugeEstAnswerBytes = 4u << 20;

// Reads "user:password" lines (blank lines and '#' comments skipped).
std::vector<std::pair<std::string, std::string>> read_credentials(const std::string& path);

}  // namespace mtls::sandbox
