#include "agent/daemon/health.hpp"

#include <algorithm>
#include <cstdio>
#include <ctime>

namespace mtls::daemon {

std::string rfc3339(Clock::time_point t) {
    std::time_t tt = Clock::to_time_t(t);
    std::tm tm{};
    gmtime_r(&tt, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

namespace {
nlohmann::json opt_time(const std::optional<Clock::time_point>& t) {
    return t ? nlohmann::json(rfc3339(*t)) : nlohmann::json(nullptr);
}

// "29d 23h", "5h 02m", "4m 10s", "expired".
std::string duration_text(long long s) {
    if (s <= 0) return "expired";
    char buf[48];
    if (s >= 86400)
        std::snprintf(buf, sizeof buf, "%lldd %02lldh", s / 86400, s % 86400 / 3600);
    else if (s >= 3600)
        std::snprintf(buf, sizeof buf, "%lldh %02lldm", s / 3600, s % 3600 / 60);
    else if (s >= 60)
        std::snprintf(buf, sizeof buf, "%lldm %02llds", s / 60, s % 60);
    else
        std::snprintf(buf, sizeof buf, "%llds", s);
    return buf;
}
}  // namespace

nlohmann::json build_status(const StatusInputs& in) {
    using std::chrono::duration_cast;
    using std::chrono::seconds;
    int level = 0;  // 0 healthy, 1 degraded, 2 failing
    std::vector<std::string> reasons;
    auto worse = [&](int l, std::string why) {
        level = std::max(level, l);
        reasons.push_back(std::move(why));
    };
    const bool renewal_failing = in.renewal.consecutive_failures > 0;

    if (!in.renewal.key_problem.empty()) worse(2, in.renewal.key_problem);
    nlohmann::json id = nullptr;
    if (!in.identity) {
        worse(2, "no client certificate: enrollment has not succeeded (last attempt: " +
                     in.renewal.last_result + ")");
    } else {
        const auto& f = *in.identity;
        auto left = duration_cast<seconds>(f.not_after - in.now).count();
        auto life = duration_cast<seconds>(f.not_after - f.not_before).count();
        auto last_part = std::max<long long>(60, life / 10);
        if (left <= 0) {
            worse(2, "certificate expired at " + rfc3339(f.not_after));
        } else if (renewal_failing && left <= last_part) {
            worse(2, "certificate expires in " + std::to_string(left) +
                         " s and renewal is failing: " + in.renewal.last_result);
        } else if (renewal_failing) {
            worse(1, "renewal failed " + std::to_string(in.renewal.consecutive_failures) +
                         " time(s), retrying: " + in.renewal.last_result);
        }
        id = {{"subject", f.subject},
              {"common_name", f.cn},
              {"sans", f.sans},
              {"eku", f.eku},
              {"serial", f.serial_hex},
              {"issuer", f.issuer},
              {"chain", f.chain},
              {"not_before", rfc3339(f.not_before)},
              {"not_after", rfc3339(f.not_after)},
              {"seconds_left", std::max<long long>(0, left)},
              {"time_remaining", duration_text(left)},
              {"key_type", f.key_type},
              {"key_id", f.key_id},
              {"key_uri", f.key_uri},
              {"token_uri", f.token_uri},
              {"thumbprint_sha256", f.thumbprint}};
    }
    if (!in.token_present)
        worse(2, "the PKCS#11 token is not present");
    else if (!in.token_logged_in)
        worse(1, "not logged in to the PKCS#11 token (will retry)");

    nlohmann::json tokens = nlohmann::json::array();
    for (const auto& t : in.tokens) {
        if (!t.last_error.empty()) worse(1, "access token for " + t.profile + ": " + t.last_error);
        tokens.push_back({{"profile", t.profile},
                          {"state", t.state},
                          {"valid_until", opt_time(t.valid_until)},
                          {"last_error", t.last_error}});
    }
    nlohmann::json routes = nlohmann::json::array();
    for (const auto& r : in.routes) {
        const bool route_degraded = r.consecutive_failures >= kRouteFailuresForDegraded;
        nlohmann::json last = nullptr;
        if (!r.last_failure.empty()) {
            last = {{"error", r.last_failure},
                    {"status", r.last_failure_status},
                    {"at", opt_time(r.last_failure_at)}};
        }
        if (route_degraded)
            worse(1, "route " + r.name + ": the last " + std::to_string(r.consecutive_failures) +
                         " requests failed (last error: " + r.last_failure + ", status " +
                         std::to_string(r.last_failure_status) +
                         (r.last_failure_at ? " at " + rfc3339(*r.last_failure_at) : "") + ")");
        routes.push_back({{"name", r.name},
                          {"state", route_degraded ? "degraded" : "healthy"},
                          {"requests", r.requests},
                          {"responses",
                           {{"2xx", r.status_2xx},
                            {"3xx", r.status_3xx},
                            {"4xx", r.status_4xx},
                            {"5xx", r.status_5xx}}},
                          {"proxy_errors", r.proxy_errors},
                          {"no_response", r.no_response},
                          {"broken_responses", r.broken_responses},
                          {"consecutive_failures", r.consecutive_failures},
                          {"last_error", last},
                          {"pool_size", r.pool_size}});
    }

    static const char* names[] = {"healthy", "degraded", "failing"};
    return {
        {"state", names[level]},
        {"reasons", reasons},
        {"version", in.version},
        {"identity", id},
        {"est", {{"server", in.est.server}, {"ca_label", in.est.ca_label}}},
        {"renewal",
         {{"next_at", opt_time(in.renewal.next_at)},
          {"last_at", opt_time(in.renewal.last_at)},
          {"last_result", in.renewal.last_result},
          {"consecutive_failures", in.renewal.consecutive_failures},
          {"last_compromise", in.renewal.last_compromise
                                  ? nlohmann::json{{"at", rfc3339(in.renewal.last_compromise->at)},
                                                   {"trigger", in.renewal.last_compromise->trigger},
                                                   {"reason", in.renewal.last_compromise->reason}}
                                  : nlohmann::json(nullptr)}}},
        {"token_device", {{"present", in.token_present}, {"logged_in", in.token_logged_in}}},
        {"tokens", tokens},
        {"routes", routes}};
}

int health_level(const nlohmann::json& status) {
    const auto state = status.value("state", std::string("failing"));
    return state == "healthy" ? 0 : state == "degraded" ? 1 : 2;
}

}  // namespace mtls::daemon
