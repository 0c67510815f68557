// Reading the facts the status and metrics documents need from the live parts.
#pragma once

#include "agent/metrics/token_ops.hpp"

#include "agent/daemon/health.hpp"
#include "agent/identity/identity.hpp"
#include "agent/proxy/stats.hpp"
#include "agent/renewal/renewer.hpp"
#include "agent/token/token_cache.hpp"
#include "pkcs11/token.hpp"

#include <string>

namespace mtls::daemon {

IdentityFacts identity_facts(const identity::Identity& id, const std::string& key_type,
                             const std::string& token_uri);
RenewalFacts renewal_facts(const renewal::Status& s);
// present: the slot reports a token; logged_in: a session is in a user state.
void token_device_facts(pkcs11::Token& token, bool& present, bool& logged_in);
// One entry per configured profile, for the current identity's certificate.
std::vector<TokenProfileFacts> token_facts(const token::TokenCache* cache,
                                           const identity::IdentityPtr& current);
std::vector<RouteFacts> route_facts(const proxy::ProxyStats& stats);
// The proxy's workers (listener.workers) and the app connections on each, for status:
// {"workers": N, "connections_open": n, "per_worker": [{"worker", "open", "accepted"}…]}.
nlohmann::json proxy_facts(const proxy::ProxyStats& stats);

// The chain as PEM, leaf first.
std::string chain_pem(const identity::Identity& id);

// Prometheus text for everything the agent counts.
std::string metrics_text(const proxy::ProxyStats& stats, const renewal::Status& renewal,
                         const identity::IdentityPtr& id, const token::TokenCache* cache,
                         const metrics::TokenOpMetrics& token_ops, int health_level);

}  // namespace mtls::daemon
