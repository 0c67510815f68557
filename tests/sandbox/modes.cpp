#include "tests/sandbox/modes.hpp"

#include "tests/sandbox/csrattrs.hpp"

#include <set>

namespace mtls::sandbox {

bool parse_pop(const std::string& s, PopMode& out) {
    if (s == "off" || s == "none")
        out = PopMode::off;
    else if (s == "tls-unique")
        out = PopMode::tls_unique;
    else if (s == "tls-exporter")
        out = PopMode::tls_exporter;
    else if (s == "any" || s == "on")
        out = PopMode::any;
    else
        return false;
    return true;
}

const char* to_string(PopMode p) {
    switch (p) {
        case PopMode::off:
            return "off";
        case PopMode::tls_unique:
            return "tls-unique";
        case PopMode::tls_exporter:
            return "tls-exporter";
        case PopMode::any:
            return "any";
    }
    return "?";
}

Modes::Modes(const Options& o) {
    as_.kind = o.as_mode;
    est_.fail_status = o.est_fail_status;
    est_.retry_remaining = o.est_retry_count;
    est_.retry_after = o.est_retry_after;
    est_.pop = o.est_pop;
    est_.csrattrs = o.est_csrattrs;
    est_.csrattrs_nul = o.est_csrattrs_nul;
    est_.enforce_csrattrs = o.est_enforce_csrattrs;
}

AsMode Modes::as() const {
    std::lock_guard l(mu_);
    return as_;
}

EstMode Modes::est() const {
    std::lock_guard l(mu_);
    return est_;
}

std::optional<int> Modes::take_retry() {
    std::lock_guard l(mu_);
    if (est_.retry_remaining <= 0) return std::nullopt;
    --est_.retry_remaining;
    return est_.retry_after;
}

std::string Modes::apply(const std::string& key, const std::string& value) {
    static const std::set<std::string> kAsKinds = {"normal", "down", "slow",         "400",
                                                   "401",    "500",  "hostile-json", "error"};
    static const std::set<std::string> kErrors = {
        "invalid_request",     "invalid_client",         "invalid_grant",
        "unauthorized_client", "unsupported_grant_type", "invalid_scope",
        "invalid_target",      "server_error",           "temporarily_unavailable"};
    static const std::set<std::string> kVariants = {"truncated", "deep",  "types",   "huge",
                                                    "not-json",  "empty", "no-token"};
    static const std::set<std::string> kEstVariants = {
        "normal", "garbage", "truncated", "other-key", "expired", "not-yet-valid", "huge"};
    auto number = [&](int lo, int hi, int& out) -> std::string {
        try {
            std::size_t used = 0;
            int v = std::stoi(value, &used);
            if (used != value.size() || v < lo || v > hi) throw std::out_of_range(value);
            out = v;
            return "";
        } catch (const std::exception&) {
            return key + ": expected a number in [" + std::to_string(lo) + ", " +
                   std::to_string(hi) + "], got \"" + value + "\"";
        }
    };
    bool was_down = false, now_down = false;
    std::string err;
    {
        std::lock_guard l(mu_);
        was_down = as_.kind == "down";
        if (key == "as") {
            if (!kAsKinds.count(value))
                err = "as: unknown mode \"" + value + "\"";
            else
                as_.kind = value;
        } else if (key == "delay_ms") {
            int ms = 0;
            err = number(0, 600000, ms);
            if (err.empty()) as_.delay = std::chrono::milliseconds(ms);
        } else if (key == "error") {
            if (!kErrors.count(value))
                err = "error: unknown OAuth error code \"" + value + "\"";
            else
                as_.error = value;
        } else if (key == "variant") {
            if (!kVariants.count(value))
                err = "variant: unknown \"" + value + "\"";
            else
                as_.variant = value;
        } else if (key == "est") {
            if (value == "normal")
                est_.fail_status = 0;
            else if (value == "401" || value == "403" || value == "500")
                est_.fail_status = std::stoi(value);
            else
                err = "est: expected normal, 401, 403 or 500";
        } else if (key == "est_retry") {
            err = number(0, 1000, est_.retry_remaining);
        } else if (key == "retry_after") {
            err = number(0, 86400, est_.retry_after);
        } else if (key == "est_variant") {
            if (!kEstVariants.count(value))
                err =
                    "est_variant: expected normal, garbage, truncated, other-key, expired, "
                    "not-yet-valid or huge";
            else
                est_.variant = value;
        } else if (key == "est_csrattrs") {
            try {
                (void)build_csrattrs_der(value, est_.pop);
                est_.csrattrs = value;
            } catch (const std::exception& e) {
                err = std::string("est_csrattrs: ") + e.what();
            }
        } else if (key == "est_csrattrs_nul" || key == "est_enforce_csrattrs") {
            bool& flag = key == "est_csrattrs_nul" ? est_.csrattrs_nul : est_.enforce_csrattrs;
            if (value == "1" || value == "true" || value == "on")
                flag = true;
            else if (value == "0" || value == "false" || value == "off")
                flag = false;
            else
                err = key + ": expected 1 or 0";
        } else if (key == "est_pop") {
            if (!parse_pop(value, est_.pop))
                err = "est_pop: expected off, tls-unique, tls-exporter or any";
        } else if (key == "est_base64") {
            if (value == "lines" || value == "lenient")
                est_.base64_lines_only = value == "lines";
            else
                err = "est_base64: expected lines or lenient";
        } else if (key == "est_response_base64") {
            if (value == "lines" || value == "oneline")
                est_.response_oneline = value == "oneline";
            else
                err = "est_response_base64: expected lines or oneline";
        } else if (key == "reenroll_auth") {
            if (!parse_auth_scheme(value, est_.reenroll_auth))
                err = "reenroll_auth: expected none, basic or digest";
        } else if (key == "enroll_auth") {
            AuthScheme a;
            if (!parse_auth_scheme(value, a) || a == AuthScheme::none)
                err = "enroll_auth: expected basic or digest";
            else
                est_.enroll_auth = a;
        } else if (key == "digest_algorithms") {
            if (!parse_digest_algorithms(value, est_.digest_algorithms))
                err = "digest_algorithms: expected both, sha-256 or md5";
        } else if (key == "est_202") {
            if (value == "normal" || value == "close")
                est_.accepted_close = value == "close";
            else
                err = "est_202: expected normal or close";
        } else if (key == "est_status_field") {
            if (value == "0" || value == "1")
                est_.status_field = value == "1";
            else
                err = "est_status_field: expected 0 or 1";
        } else {
            err = "unknown mode setting \"" + key + "\"";
        }
        now_down = as_.kind == "down";
    }
    if (err.empty() && was_down != now_down && on_as_availability) on_as_availability(!now_down);
    return err;
}

nlohmann::json Modes::to_json() const {
    std::lock_guard l(mu_);
    return {{"as",
             {{"mode", as_.kind},
              {"delay_ms", as_.delay.count()},
              {"error", as_.error},
              {"variant", as_.variant}}},
            {"est",
             {{"fail_status", est_.fail_status},
              {"retry_remaining", est_.retry_remaining},
              {"retry_after", est_.retry_after},
              {"pop", to_string(est_.pop)},
              {"variant", est_.variant},
              {"base64", est_.base64_lines_only ? "lines" : "lenient"},
              {"response_base64", est_.response_oneline ? "oneline" : "lines"},
              {"reenroll_auth", to_string(est_.reenroll_auth)},
              {"enroll_auth", to_string(est_.enroll_auth)},
              {"digest_algorithms", to_string(est_.digest_algorithms)},
              {"accepted", est_.accepted_close ? "close" : "normal"},
              {"status_field", est_.status_field},
              {"csrattrs", est_.csrattrs},
              {"csrattrs_nul", est_.csrattrs_nul},
              {"enforce_csrattrs", est_.enforce_csrattrs}}}};
}

}  // namespace mtls::sandbox
