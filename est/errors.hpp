// EST failures: what failed, the server's status and text when there was one, and what to do.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

#include "common/http_client.hpp"

namespace mtls::est {

class Error : public std::runtime_error {
  public:
    enum class Kind {
        config,            // our settings are unusable (URL, trust, credentials file)
        transport,         // no HTTP response (connect, TLS, timeout, too large)
        untrusted_server,  // the EST server failed our trust checks (CA file / pin / name)
        http_status,       // the server answered with an error status
        bad_response,      // the body is not what RFC 7030 says (PKCS#7, CsrAttrs)
        key_mismatch,      // the issued certificate is for another key
        cert_expired,      // the issued certificate is already expired
        cert_not_yet_valid,
        chain_untrusted,  // the issued certificate does not chain to the stored CA certs
        pending,          // still 202 after the allowed number of attempts
        pop_failed,       // proof-of-possession linking could not be done
        interrupted,      // the stop token was triggered while waiting
    };

    Error(Kind kind, const std::string& message, long status = 0);

    Kind kind() const { return kind_; }
    long status() const { return status_; }  // HTTP status, 0 when none
    // Whether trying again later may succeed (5xx, transport, pending).
    bool retryable() const;

  private:
    Kind kind_;
    long status_;
};

// What we sent, for the messages of a failed (re)enroll or csrattrs: the server's status
// alone rarely says which of our choices it refused.
struct RequestContext {
    std::string operation;            // "simpleenroll" | "simplereenroll" | "csrattrs"
    std::string key;                  // "EC/256" (empty: no CSR was sent)
    std::string digest;               // "SHA256"
    std::string subject;              // RFC 2253 text of the CSR's subject
    std::string pop;                  // "tls-unique" | "tls-exporter" in challengePassword, "" none
    bool client_certificate = false;  // a TLS client certificate was presented
    bool credentials_configured = false;  // est.basic_credentials is set
    std::string auth_setting;  // est.auth as configured ("basic" | "digest" | …), may be ""
};

// What to do about an HTTP error status, e.g. 401 -> "check est.basic_credentials / the
// bootstrap certificate".
std::string status_hint(long status);

// "EST <operation> failed: server said 401 ("first 200 printable bytes") — check …"
Error status_error(std::string_view operation, const http::Response& response);

// The same with what we sent: a 400 quotes the server and names the operation, key type,
// digest, subject and PoP; a 401 says whether a client certificate was presented, whether
// credentials were configured and offered, and which scheme the server asked for.
Error status_error(const RequestContext& context, const http::Response& response);

// Maps an http::Error of `operation` to an est::Error with a hint.
Error transport_error(std::string_view operation, const http::Error& e);

}  // namespace mtls::est
