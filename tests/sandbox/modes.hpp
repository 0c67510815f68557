// Fault modes the tests switch at run time through POST /sandbox/mode (admin.cpp) or set at
// start by flag: the AS down / slow / answering errors / hostile JSON, EST rejecting or
// deferring, and recovery.
#pragma once

#include "tests/sandbox/http_auth.hpp"
#include "tests/sandbox/options.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <functional>
#include <mutex>
#include <optional>
#include <string>

namespace mtls::sandbox {

struct AsMode {
    // normal | down | slow | 400 | 401 | 500 | hostile-json | error
    std::string kind = "normal";
    std::chrono::milliseconds delay{2000};  // for slow
    std::string error = "invalid_grant";    // for error: the RFC 6749 error code
    std::string variant = "truncated";      // for hostile-json
};

struct EstMode {
    int fail_status = 0;      // 0 or 401/403/500
    int retry_remaining = 0;  // 202 answers left before issuing
    int retry_after = 1;      // seconds
    PopMode pop = PopMode::off;
    // How a successful (re)enroll is answered: normal, or broken on purpose —
    // garbage | truncated | other-key | expired | not-yet-valid | huge (see README.md).
    std::string variant = "normal";

    // Wire behaviour modelled on real servers (README.md "EST wire modes"):
    // est_base64=lines|lenient — lines (default, libest's BIO decoder): a CSR body that is one
    // unterminated base64 line decodes to nothing -> 400 "Invalid or corrupted pkcs10 request".
    bool base64_lines_only = true;
    // est_response_base64=lines|oneline — oneline: bodies as one base64 line, no padding, no
    // trailing newline (RFC 8951 §3: clients must accept it).
    bool response_oneline = false;
    // reenroll_auth=none|basic|digest: simplereenroll (and csrattrs from a CA-issued client
    // certificate) also needs HTTP authentication (RFC 7030 §3.2.3; libest's default).
    AuthScheme reenroll_auth = AuthScheme::none;
    // enroll_auth=basic|digest: how simpleenroll without an accepted client certificate
    // authenticates; digest: a Digest-only server (Basic refused; csrattrs challenged too).
    AuthScheme enroll_auth = AuthScheme::basic;
    DigestAlgorithms digest_algorithms = DigestAlgorithms::both;  // digest_algorithms=
    // est_202=normal|close — close: 202 without Content-Length, body ended by closing.
    bool accepted_close = false;
    // est_status_field=0|1 — a CGI "Status: <code> <reason>" field on every EST response.
    bool status_field = false;
    std::string csrattrs = "default";  // the csrattrs spec (tests/sandbox/csrattrs.hpp)
    bool csrattrs_nul = false;         // a NUL after the csrattrs body, as C-string servers send
    bool enforce_csrattrs = false;     // 400 for a CSR lacking what csrattrs asks for
};

class Modes {
  public:
    explicit Modes(const Options& o);

    AsMode as() const;
    EstMode est() const;
    // Consumes one 202 if any are left; returns the Retry-After to send.
    std::optional<int> take_retry();

    // Applies `key=value` settings (from the admin query); returns an error text or "".
    std::string apply(const std::string& key, const std::string& value);
    nlohmann::json to_json() const;

    // Called when the AS goes down (false) or comes back (true).
    std::function<void(bool up)> on_as_availability;

  private:
    mutable std::mutex mu_;
    AsMode as_;
    EstMode est_;
};

bool parse_pop(const std::string& s, PopMode& out);
const char* to_string(PopMode p);

}  // namespace mtls::sandbox
