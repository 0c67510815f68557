// The agent's health verdict and the admin `status` document (docs/admin-protocol.md), as a
// pure function of what the parts report, so the rules are testable on their own:
//   failing  — the current key is missing on the token, no identity, an expired certificate,
//              a certificate in the last 10 % of its lifetime (at least 60 s) after a
//              failed renewal, or the token is not present;
//   degraded — the last renewal failed (retrying), a token profile's last request failed, or
//              a route's last kRouteFailuresForDegraded (3) requests failed (the partner
//              unreachable, TLS failed, timed out, broke off; no access token; the partner
//              answered 401 error="invalid_token"); any other answer of the partner resets it;
//   healthy  — otherwise.
// The agent never looks healthy while it cannot authenticate.
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace mtls::daemon {

using Clock = std::chrono::system_clock;

struct IdentityFacts {
    // subject and issuer as RFC 4514 strings ("CN=host,OU=ops,O=Example"; absent attributes
    // are left out), like every certificate name the status shows.
    std::string subject, cn, serial_hex, issuer, key_type, key_id, token_uri, thumbprint;
    std::string key_uri;             // pkcs11: URI of the private key (id=…;type=private)
    std::vector<std::string> sans;   // "DNS:host", "IP:192.0.2.1", "URI:…", "email:…"
    std::vector<std::string> eku;    // "clientAuth", or the OID
    std::vector<std::string> chain;  // the subjects of the certificates after the leaf
    Clock::time_point not_before, not_after;
};

struct EstFacts {
    std::string server, ca_label;
};

struct RenewalFacts {
    std::optional<Clock::time_point> next_at, last_at;
    std::string last_result = "never";
    int consecutive_failures = 0;
    std::string key_problem;  // e.g. "the current key is missing on the token"
    // The last time our key was declared compromised or our certificate found revoked.
    struct Compromise {
        Clock::time_point at;
        std::string trigger;  // "operator" | "revoked"
        std::string reason;
    };
    std::optional<Compromise> last_compromise;
};

struct TokenProfileFacts {
    std::string profile;
    std::optional<Clock::time_point> valid_until;
    std::string last_error;
    // valid | refreshing | fetching | failed | "not yet requested" (no request since start,
    // the last rotation or `tokens flush`)
    std::string state = "not yet requested";
};

// Failures of a route in a row that make the agent degraded.
inline constexpr std::uint32_t kRouteFailuresForDegraded = 3;

struct RouteFacts {
    std::string name;
    std::uint64_t requests = 0;
    std::uint64_t status_2xx = 0, status_3xx = 0, status_4xx = 0, status_5xx = 0;  // partner's
    std::uint64_t proxy_errors = 0;      // answered by the agent itself
    std::uint64_t no_response = 0;       // the app went away before any answer
    std::uint64_t broken_responses = 0;  // partner responses cut off mid-body (in status_*)
    std::uint64_t pool_size = 0;
    std::uint32_t consecutive_failures = 0;
    std::string last_failure;  // upstream_connect, …, partner_invalid_token; "" if none
    unsigned last_failure_status = 0;
    std::optional<Clock::time_point> last_failure_at;
};

struct StatusInputs {
    Clock::time_point now;
    std::string version;
    std::optional<IdentityFacts> identity;
    EstFacts est;
    RenewalFacts renewal;
    bool token_present = false, token_logged_in = false;
    std::vector<TokenProfileFacts> tokens;
    std::vector<RouteFacts> routes;
};

std::string rfc3339(Clock::time_point t);
nlohmann::json build_status(const StatusInputs& in);
// 0 healthy, 1 degraded, 2 failing (the mtls_agent_health_state gauge) for a status' state.
int health_level(const nlohmann::json& status);

}  // namespace mtls::daemon
