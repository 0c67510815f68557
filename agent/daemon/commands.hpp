// The admin commands of the running agent (docs/admin-protocol.md): status, cert, rotate,
// renew, reload, tokens.flush, metrics — registered on the admin server over the live parts.
#pragma once

#include "agent/admin/server.hpp"
#include "agent/identity/identity_store.hpp"
#include "agent/proxy/proxy.hpp"
#include "agent/renewal/own_revocation.hpp"
#include "agent/renewal/renewer.hpp"
#include "agent/token/token_cache.hpp"
#include "config/config.hpp"

#include <nlohmann/json.hpp>

#include <functional>
#include <memory>
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
    proxy::Proxy* proxy = nullptr;  // reload swaps its route table
    // Takes the token cache a reload creates when it brings the first [oauth] profiles (the
    // daemon owns it, hands it to the proxy); returns it.
    std::function<token::TokenCache*(std::unique_ptr<token::TokenCache>)> adopt_tokens;
    // [admin] and [metrics] for a reload: binds what changed and returns the step that puts
    // it in use; throws std::runtime_error when it cannot (nothing changed then).
    std::function<std::function<void()>(const config::Config& next)> prepare_servers;
    // Told after a reload applied [oauth] (the token warm-up follows the new profiles).
    std::function<void(const config::OAuth&)> oauth_applied;
    // Our own certificate's revocation watch: told a reloaded [renewal].
    renewal::OwnRevocationWatch* own_revocation = nullptr;
};

void register_commands(admin::Server& admin, Parts& parts);

// Re-reads the configuration file, between RELOADING=1 and READY=1 (notifier.hpp), on the
// io_context thread. Everything is checked and prepared first (parsed, route table built);
// only when all of it can be applied is it applied, at once. Otherwise throws
// admin::CommandError "reload_invalid" listing every reason, and nothing changes: the running
// configuration stays. Applied: [key], [est], [renewal], [logging], [[routes]], [listener],
// [oauth], [admin], [metrics] and [export]
// (token_cache.hpp says which cached tokens go); returns
// {"message", "applied", "restart_needed", "routes"} naming the changed sections that only a
// restart applies and the routes added, changed and removed.
nlohmann::json reload(Parts& parts);

// The sections that differ between `running` and `loaded` and that a reload cannot apply.
std::vector<std::string> needs_restart(const config::Config& running, const config::Config& loaded);

// [logging] level and format.
void apply_logging(const config::Logging& logging);

}  // namespace mtls::daemon
