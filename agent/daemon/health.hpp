// The agent's health verdict and the admin `status` document (docs/admin-protocol.md), as a
// pure function of what the parts report, so the rules are testable on their own:
//   failing  — the current key is missing on the token, no identity, an expired certificate,
//              a certificate in the last 10 % of its lifetime (at least 60 s) after a
//              failed renewal, or the token is not present;
//   degraded — the last renewal failed (retrying), or a token profile's last request failed;
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
    std::string cn, o, ou, serial_hex, issuer, key_type, key_id, token_uri, thumbprint;
    Clock::time_point not_before, not_after;
};

struct RenewalFacts {
    std::optional<Clock::time_point> next_at, last_at;
    std::string last_result = "never";
    int consecutive_failures = 0;
    std::string key_problem;  // e.g. "the current key is missing on the token"
};

struct TokenProfileFacts {
    std::string profile;
    std::optional<Clock::time_point> valid_until;
    std::string last_error;
};

struct RouteFacts {
    std::string name;
    std::uint64_t requests = 0, errors = 0, pool_size = 0;
};

struct StatusInputs {
    Clock::time_point now;
    std::string version;
    std::optional<IdentityFacts> identity;
    RenewalFacts renewal;
    bool token_present = false, token_logged_in = false;
    std::vector<TokenProfileFacts> tokens;
    std::vector<RouteFacts> routes;
};

std::string rfc3339(Clock::time_point t);
nlohmann::json build_status(const StatusInputs& in);

}  // namespace mtls::daemon
