// Watching our own certificate for revocation (issue #19, [renewal] revocation_check): on a
// thread of its own, every revocation_check_interval — sooner when the last answer's
// nextUpdate (the CA's next CRL) passes, and at once for every new identity — the current
// leaf and each of its issuers (the chain up to the EST CA's root from /cacerts) are checked
// with the revocation core (revocation::Checker::check_chain: the OCSP responder of the AIA,
// else the CRL distribution points). The checker is our own, its answers kept no longer than
// the interval, so every check asks the CA afresh.
//   revoked -> Renewer::compromised("revoked", …): status `failing: our certificate was
//              revoked (reason, time)`, the identity burnt, the key destroyed, a fresh
//              enrollment with the bootstrap credentials (renewer.hpp);
//   unknown -> logged (renewal.own_revocation_unknown, when it changes) and counted, nothing
//              else: an unreachable CA must not take the agent down;
//   good    -> counted.
// Status (`own_revocation` in the status document) and metrics
// (mtls_agent_own_revocation_*) show the last check and its result.
#pragma once

#include "agent/identity/identity_store.hpp"
#include "agent/renewal/renewer.hpp"
#include "config/config.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <thread>

namespace mtls::revocation {
class Checker;
}

namespace mtls::renewal {

class OwnRevocationWatch {
  public:
    OwnRevocationWatch(const config::Renewal& cfg, identity::IdentityStore& identities,
                       Renewer& renewer);
    ~OwnRevocationWatch();  // stop()
    OwnRevocationWatch(const OwnRevocationWatch&) = delete;
    OwnRevocationWatch& operator=(const OwnRevocationWatch&) = delete;

    void run();
    void stop();
    // A reloaded [renewal]: mode and interval from the next check on (which comes at once).
    void update_config(const config::Renewal& cfg);

    // {"mode", "interval_s", "last_check_at", "next_check_at", "result": "never | good |
    //  revoked | unknown | off", "detail", "serial"}
    nlohmann::json status_json() const;
    // mtls_agent_own_revocation_last_check_timestamp_seconds, _result{result},
    // _checks_total{result}.
    std::string metrics() const;

  private:
    void loop(std::stop_token stop);
    // One check of the current identity; returns when the next one is due.
    std::chrono::system_clock::time_point check_once();

    identity::IdentityStore& identities_;
    Renewer& renewer_;
    identity::IdentityStore::Subscription sub_;

    mutable std::mutex mu_;
    std::condition_variable_any cv_;
    config::Renewal cfg_;
    bool wake_ = true;                              // check at once (start, new identity, reload)
    std::unique_ptr<revocation::Checker> checker_;  // renewer-like thread only
    std::chrono::seconds checker_age_{0};           // the max_cache_age it was made with
    // What status and metrics show (under mu_).
    std::optional<std::chrono::system_clock::time_point> last_at_, next_at_;
    std::string result_ = "never", detail_, serial_, last_logged_;
    std::map<std::string, std::uint64_t> counts_;  // result -> checks
    std::jthread thread_;
};

}  // namespace mtls::renewal
