// The EST client (RFC 7030): /cacerts, /csrattrs, /simpleenroll, /simplereenroll over one
// libcurl session per operation, with an explicit trust anchor (CA file, stored CA
// certificates, or a pinned SHA-256 for the very first contact).
#pragma once

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <chrono>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include "common/http_client.hpp"
#include "common/ossl.hpp"
#include "config/config.hpp"
#include "est/csr.hpp"
#include "est/csrattrs.hpp"
#include "est/errors.hpp"
#include "est/verify.hpp"

namespace mtls::est {

struct Settings {
    std::string server_url;   // "https://est.example:8443" (a path prefix is allowed)
    std::string ca_label;     // optional: /.well-known/est/<label>/<operation>
    http::ServerTrust trust;  // who the EST server must be
    std::chrono::seconds timeout{30};
    std::size_t max_response_bytes = 1u << 20;
    std::chrono::seconds retry_after_cap{300};  // longest wait honoured for one 202
    int max_attempts = 5;                       // enroll requests, 202 retries included
    bool pop_linking = false;    // always put the channel binding in challengePassword
    bool fetch_csrattrs = true;  // ask /csrattrs before enrolling (on the same connection)
    http::TlsMax tls_max = http::TlsMax::any;
    // [est.csr_attributes]: put in the CSR (see est/csr_extras.hpp for the placement).
    std::vector<config::CsrAttribute> csr_attributes;
    // [est] revocation: the EST server's chain checked after each handshake (off: not).
    config::RevocationPolicy revocation = config::RevocationPolicy::off;
};

// Settings from [est]: trust from trust_anchor_file, else pinned_sha256 (hex, ':' allowed).
// Throws est::Error(config).
Settings settings_from_config(const config::Est& est);

// Reads "user:password" from a file (trailing newline ignored). Throws est::Error(config)
// naming the file but never its content.
http::BasicAuth load_basic_credentials(const std::string& path);

// How this client proves who it is to the EST server: HTTP Basic, a TLS client
// certificate (the bootstrap certificate, or the current one for simplereenroll), or both.
//
// HTTP credentials (user:password from est.basic_credentials) are offered in one of two ways:
// - preemptive_basic: Basic on the first request (auth = "basic" on simpleenroll, what
//   RFC 7617 clients do); a 401 that asks for Digest instead is answered once with Digest.
// - challenge-driven (preemptive_basic = false): requests go out without them, and only a
//   401 challenge for one of `schemes` is answered, libcurl picking the safest offered
//   (RFC 7030 §3.2.3: re-enrollment and csrattrs may require HTTP authentication in
//   addition to the certificate; auth = "digest"; auth = "bootstrap-cert").
struct Credentials {
    const http::BasicAuth* basic = nullptr;  // borrowed
    std::shared_ptr<const http::ClientIdentity> tls;
    bool preemptive_basic = true;
    unsigned schemes = http::auth_basic | http::auth_digest;
    std::string auth_setting = {};  // est.auth, for messages: "basic", "digest", …
};

// Credentials from [est]: what to do with est.basic_credentials (loaded into `storage`, which
// must outlive the result) for `operation` ("simpleenroll" | "simplereenroll"); the TLS part
// is left to the caller.
Credentials credentials_from_config(const config::Est& est, std::string_view operation,
                                    std::optional<http::BasicAuth>& storage);

struct EnrollResult {
    IssuedCertificate issued;  // leaf for our key + intermediates, verified
    CsrAttributes attributes;  // what /csrattrs asked for (empty if nothing)
    bool pop_linked = false;   // challengePassword carried the channel binding
    std::string binding_type;  // "tls-unique" | "tls-exporter" when pop_linked
    int attempts = 0;          // enroll requests sent (202 retries included)
};

class Client {
  public:
    explicit Client(Settings settings);

    // GET /cacerts: the CA certificates, to be stored and used as the trust anchor from now
    // on (for TLS to the EST server and for issued certificates).
    std::vector<ossl::X509Ptr> cacerts();

    // GET /csrattrs: 204/404 mean "nothing asked".
    CsrAttributes csrattrs(const Credentials& credentials = {});

    // POST /simpleenroll with a CSR for `key` built from `request`. `ca_certs` are the
    // stored CA certificates the result must verify to. Waits on 202 (Retry-After, capped),
    // interruptible through `stop`.
    EnrollResult simpleenroll(const CsrRequest& request, EVP_PKEY* key,
                              const Credentials& credentials, const std::vector<X509*>& ca_certs,
                              std::stop_token stop = {});

    // POST /simplereenroll: authenticated with the current certificate and its key
    // (credentials.tls), CSR for `new_key` (the same key or a new one) with the subject and
    // subjectAltName of `current`.
    EnrollResult simplereenroll(X509* current, EVP_PKEY* new_key, const Credentials& credentials,
                                const std::vector<X509*>& ca_certs, std::stop_token stop = {},
                                const std::string& digest = "SHA256");

    // https://host/.well-known/est[/label]/<operation>
    std::string url(std::string_view operation) const;
    const Settings& settings() const { return settings_; }

  private:
    http::Options http_options(const Credentials& c) const;
    EnrollResult enroll(std::string_view operation, CsrRequest request, EVP_PKEY* key,
                        const Credentials& credentials, const std::vector<X509*>& ca_certs,
                        std::stop_token stop);

    Settings settings_;
};

// Retry-After: delta-seconds or an HTTP-date (relative to `now`); nullopt if unparsable.
std::optional<std::chrono::seconds> parse_retry_after(
    std::string_view value,
    std::chrono::system_clock::time_point now = std::chrono::system_clock::now());

// Sleeps `d`, returning early (false) when `stop` is requested.
bool wait_for(std::chrono::milliseconds d, std::stop_token stop);

}  // namespace mtls::est
