#include "agent/export/exporter.hpp"

#include "agent/daemon/health.hpp"
#include "agent/export/export_files.hpp"
#include "agent/metrics/prometheus.hpp"
#include "agent/renewal/state_store.hpp"
#include "common/log.hpp"
#include "common/x509_text.hpp"

#include <openssl/x509.h>

namespace mtls::certexport {
namespace {

// The EST CA certificates the renewer keeps in its state ("" when unknown). The state is
// saved before an identity is published, so it matches the identity being exported.
std::string est_ca_pem(const std::string& state_dir, std::string& problem) {
    try {
        auto st = renewal::StateStore(state_dir).load();
        return st ? st->est_ca_pem : std::string();
    } catch (const std::exception& e) {
        problem = std::string("export.ca: cannot read the EST CA certificates: ") + e.what();
        return {};
    }
}

nlohmann::json when(const std::optional<Exporter::Clock::time_point>& t) {
    return t ? nlohmann::json(daemon::rfc3339(*t)) : nlohmann::json(nullptr);
}

}  // namespace

Exporter::Settings Exporter::settings_of(const config::Config& cfg) {
    return {cfg.exports, cfg.renewal.on_renew, cfg.renewal.on_renew_timeout, cfg.state_dir};
}

Exporter::Exporter(const config::Config& cfg, identity::IdentityStore& identities)
    : identities_(identities), settings_(settings_of(cfg)) {
    subscription_ = identities_.subscribe(
        [this](const identity::IdentityPtr& now, const identity::IdentityPtr&) {
            if (now) published(now);  // cleared: nothing to export
        });
    thread_ = std::jthread([this](std::stop_token stop) { loop(stop); });
}

Exporter::~Exporter() {
    subscription_.reset();
    thread_.request_stop();
    if (thread_.joinable()) thread_.join();
}

void Exporter::update_config(const config::Config& cfg) {
    {
        std::lock_guard lock(mu_);
        settings_ = settings_of(cfg);
    }
    if (auto id = identities_.current()) enqueue(id, false);
}

void Exporter::published(const identity::IdentityPtr& id) {
    bool changed = false;
    {
        // Compared with the last leaf seen, not with `before`: after the store was cleared (the
        // key vanished) the next certificate is still a new one.
        std::lock_guard lock(mu_);
        changed = last_leaf_ && X509_cmp(last_leaf_.get(), id->leaf()) != 0;
        X509_up_ref(id->leaf());
        last_leaf_.reset(id->leaf());
    }
    enqueue(id, changed);
}

void Exporter::enqueue(identity::IdentityPtr id, bool new_certificate) {
    {
        std::lock_guard lock(mu_);
        const bool changed = new_certificate || (pending_ && pending_->new_certificate);
        pending_ = Job{std::move(id), changed};
    }
    cv_.notify_one();
}

void Exporter::loop(std::stop_token stop) {
    for (;;) {
        Job job;
        Settings s;
        {
            std::unique_lock lock(mu_);
            if (!cv_.wait(lock, stop, [&] { return pending_.has_value(); })) return;
            job = std::move(*pending_);
            pending_.reset();
            s = settings_;
        }
        try {
            const bool written = sync_files(*job.id, s);
            if (!s.on_renew.empty() && (written || job.new_certificate)) {
                const auto serial = x509text::serial_hex(job.id->leaf());
                const auto not_after = daemon::rfc3339(job.id->not_after());
                job.id.reset();  // a running command does not hold the identity (and its key)
                run_command(serial, not_after, s, stop);
            }
        } catch (const std::exception& e) {  // e.g. std::bad_alloc: the next job tries again
            log::error("export.failed", {{"error", e.what()}});
        }
    }
}

bool Exporter::sync_files(const identity::Identity& id, const Settings& s) {
    const auto& x = s.files;
    if (x.cert.empty() && x.chain.empty() && x.fullchain.empty() && x.ca.empty()) {
        std::lock_guard lock(mu_);
        serial_ = x509text::serial_hex(id.leaf());  // what the command was (or was not) run for
        return false;
    }
    std::string problem;
    const std::string ca = x.ca.empty() ? std::string() : est_ca_pem(s.state_dir, problem);
    auto wanted = export_contents(x, id, ca, problem);
    std::vector<std::string> written, errors;
    if (!problem.empty()) errors.push_back(problem);
    try {
        const auto owner = resolve_owner(x);
        for (const auto& f : wanted) {
            if (up_to_date(f, x.mode, owner)) continue;
            try {
                write_export(f, x, owner);
                written.push_back(f.path);
            } catch (const std::exception& e) {
                errors.push_back(e.what());
            }
        }
    } catch (const std::exception& e) {  // owner or group unknown on this host
        errors.push_back(e.what());
    }
    const std::string serial = x509text::serial_hex(id.leaf());
    std::string joined;
    for (const auto& e : errors) joined += (joined.empty() ? "" : "; ") + e;
    {
        std::lock_guard lock(mu_);
        serial_ = serial;
        if (!written.empty()) written_at_ = Clock::now();
        writes_ += written.size();
        if (!errors.empty()) ++export_failures_;
        export_error_ = joined;
    }
    for (const auto& path : written)
        log::info("export.written", {{"file", path}, {"serial", serial}});
    if (!errors.empty())
        log::error("export.failed", {{"error", joined},
                                     {"serial", serial},
                                     {"action", "retried at the next renewal or reload"}});
    else if (written.empty())
        log::debug("export.up_to_date", {{"serial", serial}});
    return !written.empty();
}

void Exporter::run_command(const std::string& serial, const std::string& not_after,
                           const Settings& s, std::stop_token stop) {
    HookCommand cmd;
    cmd.argv = s.on_renew;
    cmd.timeout = s.on_renew_timeout;
    // The whole environment: nothing of the agent's own (its PIN may be in it).
    cmd.env = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"};
    auto path_var = [&](const char* name, const std::string& path) {
        if (!path.empty()) cmd.env.push_back(std::string(name) + "=" + path);
    };
    path_var("MTLS_AGENT_CERT", s.files.cert);
    path_var("MTLS_AGENT_CHAIN", s.files.chain);
    path_var("MTLS_AGENT_FULLCHAIN", s.files.fullchain);
    path_var("MTLS_AGENT_CA", s.files.ca);
    cmd.env.push_back("MTLS_AGENT_SERIAL=" + serial);
    cmd.env.push_back("MTLS_AGENT_NOT_AFTER=" + not_after);

    const auto at = Clock::now();
    auto r = run_hook(cmd, stop);
    const std::string& program = cmd.argv.front();
    for (const auto& line : output_lines(r.output))
        log::info("renewal.hook_output", {{"command", program}, {"line", line}});
    if (r.output_dropped > 0)
        log::warn("renewal.hook_output_dropped",
                  {{"command", program}, {"bytes", r.output_dropped}});
    const std::string message = r.describe();
    const bool ok = r.ok();
    if (r.end == HookResult::End::stopped) {
        log::warn("renewal.hook_stopped",
                  {{"command", program}, {"result", r.result_name()}, {"message", message}});
        return;  // the agent is stopping: not a failure of the command
    }
    {
        std::lock_guard lock(mu_);
        hook_at_ = at;
        hook_result_ = r.result_name();
        hook_message_ = message;
        hook_elapsed_ = r.elapsed;
        ++hook_runs_;
        if (!ok) ++hook_failures_;
    }
    if (ok)
        log::info("renewal.hook_ran",
                  {{"command", program}, {"message", message}, {"duration_ms", r.elapsed.count()}});
    else
        log::error("renewal.hook_failed",
                   {{"command", program},
                    {"result", r.result_name()},
                    {"message", message},
                    {"duration_ms", r.elapsed.count()},
                    {"action", "fix the command; it runs again at the next renewal"}});
}

nlohmann::json Exporter::status() const {
    std::lock_guard lock(mu_);
    const auto& x = settings_.files;
    nlohmann::json files = nlohmann::json::object();
    for (auto [key, path] : {std::pair<const char*, const std::string*>{"cert", &x.cert},
                             {"chain", &x.chain},
                             {"fullchain", &x.fullchain},
                             {"ca", &x.ca}})
        if (!path->empty()) files[key] = *path;
    nlohmann::json hook = nullptr;
    if (!settings_.on_renew.empty())
        hook = {{"command", settings_.on_renew},
                {"last_run_at", when(hook_at_)},
                {"last_result", hook_result_},
                {"last_message", hook_message_},
                {"last_duration_ms", hook_elapsed_.count()},
                {"runs", hook_runs_},
                {"failures", hook_failures_}};
    return {{"files", files},
            {"serial", serial_.empty() ? nlohmann::json(nullptr) : nlohmann::json(serial_)},
            {"last_written_at", when(written_at_)},
            {"last_error", export_error_},
            {"on_renew", hook}};
}

std::string Exporter::metrics() const {
    std::lock_guard lock(mu_);
    metrics::Writer w;
    auto d = [](std::uint64_t v) { return static_cast<double>(v); };
    w.family("mtls_agent_export_writes_total", "[export] files written.", "counter");
    w.sample("mtls_agent_export_writes_total", {}, d(writes_));
    w.family("mtls_agent_export_failures_total",
             "Exports of a certificate that left a file unwritten.", "counter");
    w.sample("mtls_agent_export_failures_total", {}, d(export_failures_));
    w.family("mtls_agent_renewal_hook_runs_total", "Runs of the [renewal] on_renew command.",
             "counter");
    w.sample("mtls_agent_renewal_hook_runs_total", {}, d(hook_runs_));
    w.family("mtls_agent_renewal_hook_failures_total",
             "Runs of the on_renew command that failed, timed out or could not start.", "counter");
    w.sample("mtls_agent_renewal_hook_failures_total", {}, d(hook_failures_));
    return w.text();
}

}  // namespace mtls::certexport
