// The admin commands of the running agent (docs/admin-protocol.md): status, cert, rotate,
// renew, reload, tokens.flush, metrics — registered on the admin server over the live parts.
#pragma once

#include "agent/admin/server.hpp"
#include "agent/identity/identity_store.hpp"
#include "agent/renewal/renewer.hpp"
#include "agent/token/token_cache.hpp"
#include "config/config.hpp"

#include <nlohmann/json.hpp>

#include <functional>
#include <string>
#include <vector>

namespace mtls::certexport {
class Exporter;
}

namespace mtls::daemon {

class Notifier;

// What the commands act on. Everything outlives the admin server.
struct Parts {
    std::string config_path;
    config::Config& cfg;  // the running configuration; reload() updates the parts it applies
    identity::IdentityStore& identities;
    renewal::Renewer& renewer;
    token::TokenCache* tokens = nullptr;     // null without token profiles
    std::function<nlohmann::json()> status;  // the status document (health.hpp)
    std::function<std::string()> metrics;    // Prometheus text (facts.hpp)
    Notifier* notifier = nullptr;            // RELOADING=1 / READY=1 around a reload
    // [export] and on_renew (agent/export/exporter.hpp), given a reloaded configuration
    certexport::Exporter* exporter = nullptr;
};

void register_commands(admin::Server& admin, Parts& parts);

// Re-reads the configuration file, between RELOADING=1 and READY=1 (notifier.hpp). Invalid: throws
// admin::CommandError "reload_invalid" listing every error, and the running configuration is kept.
// Valid: [key], [est], [renewal], [export] and [logging] are applied at once; returns {"message",
// "restart_needed"} naming the changed sections that only a restart applies.
nlohmann::json reload(Parts& parts);

// The sections that differ between `running` and `loaded` and that a reload cannot apply.
std::vector<std::string> needs_restart(const config::Config& running, const config::Config& loaded);

// [logging] level and format.
void apply_logging(const config::Logging& logging);

}  // namespace mtls::daemon
