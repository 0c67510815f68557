#include "agent/daemon/revocation_facts.hpp"

#include "agent/metrics/prometheus.hpp"
#include "agent/proxy/revocation_gate.hpp"
#include "revocation/process_checker.hpp"

namespace mtls::daemon {

void apply_revocation_config(const config::Revocation& r) {
    revocation::Settings s;
    s.crl_files = r.crl_files;
    s.max_cache_age = r.max_cache_age;
    s.fetch_timeout = r.fetch_timeout;
    revocation::configure_process_checker(s);
}

nlohmann::json revocation_status() {
    nlohmann::json out = nlohmann::json::object();
    for (const auto& [route, rv] : proxy::RevocationGate::instance().last_verdicts()) {
        const auto& v = rv.verdict;
        nlohmann::json j = {{"status", std::string(revocation::to_string(v.status))},
                            {"source", std::string(revocation::to_string(v.source))},
                            {"policy", rv.policy},
                            {"detail", v.describe()},
                            {"checked_at", revocation::iso_time(rv.at)}};
        if (v.next_update) j["next_update"] = revocation::iso_time(*v.next_update);
        out[route] = std::move(j);
    }
    return out;
}

std::string revocation_metrics() {
    auto checker = revocation::process_checker();
    metrics::Writer w;
    w.family("mtls_agent_revocation_checks_total",
             "Revocation decisions on the other side's chain, by target (route:<name>, est, "
             "oauth:<profile>), source of the leaf's answer and result (good, revoked, "
             "unknown/<why>).",
             "counter");
    for (const auto& c : checker->counts())
        w.sample("mtls_agent_revocation_checks_total",
                 {{"target", c.target}, {"source", c.source}, {"result", c.result}},
                 static_cast<double>(c.count));
    w.family("mtls_agent_revocation_cache_entries",
             "OCSP answers and CRLs held by the revocation cache.", "gauge");
    w.sample("mtls_agent_revocation_cache_entries", {}, static_cast<double>(checker->cache_size()));
    w.family("mtls_agent_revocation_fetch_failures_total",
             "OCSP and CRL fetches (and background refreshes) that got no usable answer.",
             "counter");
    w.sample("mtls_agent_revocation_fetch_failures_total", {},
             static_cast<double>(checker->fetch_failures()));
    return w.text();
}

}  // namespace mtls::daemon
