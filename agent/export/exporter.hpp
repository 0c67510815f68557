// Exporter: hands each new certificate to other apps, as certmonger and `step ca renew
// --daemon` do. Subscribed to the IdentityStore; on its own thread (never the renewer's or
// the proxy's) it writes the [export] files that are missing or differ from the current
// identity (export_files.hpp), then runs [renewal] on_renew (hook_runner.hpp) when a file was
// written or the certificate changed while the agent ran. So: at start, files that are
// already current are left alone and the command does not run; missing or stale files are
// rewritten and the command runs; each renewal or rotation writes them and runs it once.
// Publishes that arrive while it works are coalesced: the latest identity is what counts.
//
// A failure (a file that cannot be written, a command that fails, hangs or cannot start)
// does not change the health verdict: it is logged (export.failed, renewal.hook_failed), shown
// under "export" in status, counted in metrics, and tried again at the next renewal (files
// also at reload).
#pragma once

#include "agent/export/hook_runner.hpp"
#include "agent/identity/identity_store.hpp"
#include "common/ossl.hpp"
#include "config/config.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

namespace mtls::certexport {

class Exporter {
  public:
    using Clock = std::chrono::system_clock;

    Exporter(const config::Config& cfg, identity::IdentityStore& identities);
    // Stops the thread; a command still running is ended (SIGTERM, then SIGKILL).
    ~Exporter();
    Exporter(const Exporter&) = delete;
    Exporter& operator=(const Exporter&) = delete;

    // A reloaded configuration: [export] and on_renew apply from now on; the files are
    // checked against the current identity at once (rewritten if the paths, mode or owner
    // changed, and then the command runs).
    void update_config(const config::Config& cfg);

    // The "export" object of the status document (docs/admin-protocol.md).
    nlohmann::json status() const;
    // Prometheus families: mtls_agent_export_writes_total, mtls_agent_export_failures_total,
    // mtls_agent_renewal_hook_runs_total, mtls_agent_renewal_hook_failures_total.
    std::string metrics() const;

  private:
    struct Settings {
        config::Export files;
        std::vector<std::string> on_renew;
        std::chrono::milliseconds on_renew_timeout{30000};
        std::string state_dir;
    };
    struct Job {
        identity::IdentityPtr id;
        bool new_certificate = false;
    };
    static Settings settings_of(const config::Config& cfg);
    // From the store's listener: a new certificate when it differs from the last one seen.
    void published(const identity::IdentityPtr& id);
    void enqueue(identity::IdentityPtr id, bool new_certificate);
    void loop(std::stop_token stop);
    // Writes what differs; true when a file was written.
    bool sync_files(const identity::Identity& id, const Settings& s);
    void run_command(const std::string& serial, const std::string& not_after, const Settings& s,
                     std::stop_token stop);

    identity::IdentityStore& identities_;
    mutable std::mutex mu_;  // guards everything below but the thread and the subscription
    std::condition_variable_any cv_;
    Settings settings_;
    std::optional<Job> pending_;
    // The leaf of the last identity published (only the certificate: holding the identity
    // would keep a retired key alive), to tell a new certificate from a re-publish.
    ossl::X509Ptr last_leaf_;

    // What status and metrics show.
    std::string serial_;  // of the certificate the files hold, as last checked
    std::optional<Clock::time_point> written_at_;
    std::string export_error_;
    std::uint64_t writes_ = 0, export_failures_ = 0;
    std::optional<Clock::time_point> hook_at_;
    std::string hook_result_ = "never", hook_message_;
    std::uint64_t hook_runs_ = 0, hook_failures_ = 0;
    std::chrono::milliseconds hook_elapsed_{0};

    identity::IdentityStore::Subscription subscription_;
    std::jthread thread_;  // last: stopped and joined first
};

}  // namespace mtls::certexport
