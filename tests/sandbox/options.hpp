// Everything the sandbox can be told on its command line (see main.cpp for the flags).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace mtls::sandbox {

enum class PopMode { off, tls_unique, tls_exporter, any };  // --est-pop
enum class TokenFormat { jwt, opaque };                     // --token-format

struct Options {
    std::string ca_dir;
    std::string info_file;
    std::string bind = "127.0.0.1";  // 127.0.0.1 or ::1 (loopback only)
    std::string host;                // host name used in URLs (default: the bind address)
    std::uint16_t est_port = 0, as_port = 0, api_port = 0;
    unsigned threads = 1;
    std::chrono::milliseconds idle_timeout{30000};
    bool quiet = false;

    // EST
    std::string est_credentials_file;           // lines "user:password"
    std::vector<std::string> est_bootstrap_ca;  // PEM files: CAs of bootstrap client certs
    std::vector<std::string> est_labels;        // accepted CA labels (empty: any)
    std::chrono::seconds cert_validity{86400};
    std::string est_csrattrs = "default";  // "default", "none", or a list (see csrattrs.hpp)
    bool est_csrattrs_nul = false;         // csrattrs body ends in a NUL (a C string)
    bool est_enforce_csrattrs = false;     // reject CSRs that lack what csrattrs asks for
    PopMode est_pop = PopMode::off;
    int est_retry_count = 0;             // reply 202 this many times first
    int est_retry_after = 1;             // Retry-After seconds
    int est_fail_status = 0;             // 401/403/500: reject everything
    std::vector<std::string> est_modes;  // --est-mode key=value: /sandbox/mode settings at start
    std::string est_tls_max;             // --est-tls-max 1.2: TLS 1.2 only, session IDs, no tickets
    bool est_separate_tls_ca = false;    // --est-tls-ca separate: TLS cert from another CA

    // OAuth AS
    std::string clients_file;  // JSON registrations (empty: open)
    TokenFormat token_format = TokenFormat::jwt;
    std::chrono::seconds token_lifetime{300};
    std::string as_mode = "normal";  // initial fault mode (see admin.cpp)

    // Partner API
    std::vector<std::string> api_extra_ca;  // extra trusted client CA files
    std::vector<std::string> api_allow_cn;  // allowlist (empty: every CA-issued cert)
    bool api_token_optional = false;        // /api/secure/* without a token is fine
    std::string api_audience;               // if set, tokens' aud must contain it
    bool api_single_use_tickets = false;
    bool api_no_tickets = false;  // TLS 1.3 tickets resume once (stateful, anti-replay)

    // Revocation (--revocation): CRL distribution point, index.txt for `openssl ocsp`
    bool revocation = false;
    std::uint16_t crl_port = 0;               // plain HTTP CRL DP (0: pick a free one)
    std::string ocsp_url;                     // AIA OCSP URL put in issued certificates
    std::chrono::seconds crl_validity{3600};  // CRL nextUpdate - thisUpdate
    bool api_staple = false;                  // staple OCSP on the partner API
    std::string staple_url;                   // where the stapler asks (default: ocsp_url)
    std::chrono::milliseconds staple_period{30000};
};

}  // namespace mtls::sandbox
