// The daemon's side of revocation checking: [revocation] applied to the process checker (at
// start and on reload), the per-route verdicts for `mtls-agentctl status`, and the metrics.
#pragma once

#include "config/config.hpp"

#include <nlohmann/json.hpp>

#include <string>

namespace mtls::daemon {

void apply_revocation_config(const config::Revocation& r);
// {"<route>": {"status": "good", "source": "ocsp", "policy": "soft-fail", "detail": "…",
//   "checked_at": "…", "next_update": "…"}} for routes that checked a connection.
nlohmann::json revocation_status();
// mtls_agent_revocation_checks_total{target,source,result}, _cache_entries,
// _fetch_failures_total.
std::string revocation_metrics();

}  // namespace mtls::daemon
