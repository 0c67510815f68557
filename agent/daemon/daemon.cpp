#include "agent/daemon/daemon.hpp"

#include "agent/admin/server.hpp"
#include "agent/daemon/commands.hpp"
#include "agent/daemon/facts.hpp"
#include "agent/daemon/metrics_http.hpp"
#include "agent/daemon/notifier.hpp"
#include "agent/daemon/revocation_facts.hpp"
#include "agent/daemon/token_warmup.hpp"
#include "agent/export/exporter.hpp"
#include "agent/identity/identity_store.hpp"
#include "agent/net/accept_guard.hpp"
#include "agent/net/asio.hpp"
#include "agent/proxy/proxy.hpp"
#include "agent/renewal/own_revocation.hpp"
#include "agent/renewal/renewer.hpp"
#include "agent/token/token_cache.hpp"
#include "common/atomic_file.hpp"
#include "common/log.hpp"
#include "pkcs11/provider/provider.hpp"

#include <grp.h>
#include <malloc.h>
#include <sys/prctl.h>
#include <systemd/sd-daemon.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace mtls::daemon {
namespace {

namespace asio = net::asio;

void notify(const std::string& state) {
    sd_notify(0, state.c_str());
}

std::vector<std::string> profile_names(const config::OAuth& oauth) {
    std::vector<std::string> names;
    for (const auto& p : oauth.profiles) names.push_back(p.name);
    return names;
}

}  // namespace

int run(const std::string& config_path, config::Config cfg) {
    apply_logging(cfg.logging);
    log::info("agent.starting", {{"version", MTLS_VERSION}, {"config", config_path}});
    // Memory holds live access tokens (and, briefly, the PIN): no core dump, and no ptrace
    // or /proc/PID/mem for other processes of the same uid.
    if (::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
        log::warn("agent.not_undumpable", {{"error", std::strerror(errno)}});
    // Freed memory at the top of a heap is kept up to 64 MiB instead of being given back at
    // once, and blocks up to 4 MiB come from the heap instead of a fresh mmap: the proxy's
    // body buffers come and go under load, and returning memory only to fault it in again
    // cost 1-2 page faults per 64 KiB response (docs/benchmarks.md). Setting these also ends
    // glibc's moving thresholds.
    ::mallopt(M_TRIM_THRESHOLD, 64 << 20);
    ::mallopt(M_MMAP_THRESHOLD, 4 << 20);
    try {
        files::ensure_dir(cfg.state_dir, 0700);
        // Like most daemons: the soft descriptor limit up to the hard one (LimitNOFILE=);
        // the connection caps are derived from what results.
        log::info("agent.fd_limit", {{"rlimit_nofile", net::raise_nofile_limit()}});

        // The token and its keys inside OpenSSL.
        auto token = pkcs11::Token::open(pkcs11::TokenOptions::from_config(cfg.pkcs11));
        auto provider = std::make_shared<pkcs11::ProviderContext>(token);
        log::info("pkcs11.token_ready", {{"token", token->description()}});
        metrics::TokenOpMetrics token_ops;
        token->set_sign_observer([&token_ops](std::chrono::nanoseconds elapsed, bool ok) {
            token_ops.observe_sign(elapsed, ok);
        });
        struct ObserverReset {  // the token may outlive token_ops (shared with the provider)
            pkcs11::Token& t;
            ~ObserverReset() { t.set_sign_observer({}); }
        } observer_reset{*token};

        apply_revocation_config(cfg.revocation);
        identity::IdentityStore identities;
        std::unique_ptr<token::TokenCache> tokens;
        if (!cfg.oauth.profiles.empty()) tokens = std::make_unique<token::TokenCache>(cfg.oauth);
        // (the renewer's thread calls this; a reload may create the cache later: see adopt)
        std::atomic<token::TokenCache*> tokens_now{tokens.get()};
        // Set once the io_context and the proxy exist: cuts the connections of a burnt
        // identity on the io_context thread.
        std::function<void(std::uint64_t)> cut_burnt;
        std::mutex cut_mu;
        auto token_sub = identities.subscribe(
            [&](const identity::IdentityPtr& now, const identity::IdentityPtr& before) {
                auto* t = tokens_now.load();
                if (t) t->identity_changed(now);
                if (now || !before || identities.usable(*before)) return;
                // Burnt (declared compromised, or revoked): its tokens and connections go now.
                const auto through = identities.burnt_through();
                if (t) t->identity_burnt(through);
                std::lock_guard lock(cut_mu);
                if (cut_burnt) cut_burnt(through);
            });

        // Before the renewer: it sees the first identity, and outlives the renewer's publishes.
        certexport::Exporter exporter(cfg, identities);
        renewal::Renewer renewer(cfg, provider, identities);
        // Our own certificate watched for revocation ([renewal] revocation_check).
        renewal::OwnRevocationWatch own_revocation(cfg.renewal, identities, renewer);
        // A signature that finds the current key gone from the token starts a new enrollment.
        token->set_key_gone_observer([&renewer](const std::string& id) { renewer.key_gone(id); });
        struct KeyGoneReset {  // declared after the renewer: reset before it is destroyed
            pkcs11::Token& t;
            ~KeyGoneReset() { t.set_key_gone_observer({}); }
        } key_gone_reset{*token};
        Notifier notifier;
        notifier.status("enrolling");
        auto first = renewer.start_up();
        if (!first.ok)
            log::error("agent.no_identity_yet",
                       {{"error", first.message}, {"action", "serving 503 no_identity; retrying"}});

        asio::io_context io(1);
        struct NotifierTimers {  // declared after io: the timers go before it
            Notifier& n;
            ~NotifierTimers() { n.stop(); }
        } notifier_timers{notifier};
        proxy::Proxy proxy(io, cfg.listener, cfg.routes, identities, tokens.get());
        proxy.start();
        {
            std::lock_guard lock(cut_mu);
            cut_burnt = [&io, &proxy](std::uint64_t through) {
                asio::post(io, [&proxy, through] { proxy.cut_identity(through); });
            };
        }
        struct CutReset {  // the proxy goes before the subscription
            std::mutex& mu;
            std::function<void(std::uint64_t)>& f;
            ~CutReset() {
                std::lock_guard lock(mu);
                f = nullptr;
            }
        } cut_reset{cut_mu, cut_burnt};
        // A token for every profile now and after every new identity (token_warmup.hpp).
        std::unique_ptr<TokenWarmup> warmup;
        if (tokens) {
            warmup =
                std::make_unique<TokenWarmup>(io, *tokens, profile_names(cfg.oauth), identities);
            warmup->start();
        }

        auto admin_options = [](const config::Admin& a) {
            admin::ServerOptions aopt;
            aopt.listener.path = a.socket;
            aopt.listener.mode = a.mode;
            aopt.listener.group = a.group;
            aopt.policy.allowed_uids = a.allowed_uids;
            aopt.policy.allowed_gids = a.allowed_gids;
            aopt.max_connections_per_uid = a.max_connections_per_uid;
            return aopt;
        };
        // Servers a reload replaced: they stopped accepting but live on for the connections
        // they serve (the reload command's own among them) until the agent stops.
        std::vector<std::shared_ptr<admin::Server>> old_admins;
        std::vector<std::shared_ptr<MetricsHttp>> old_metrics;
        auto admin = std::make_shared<admin::Server>(io, admin_options(cfg.admin));

        const std::string token_uri = token->token_uri();
        auto status_doc = [&] {
            StatusInputs in;
            in.now = std::chrono::system_clock::now();
            in.version = MTLS_VERSION;
            auto rs = renewer.status();
            if (auto id = identities.current())
                in.identity = identity_facts(*id, rs.key_type, token_uri);
            in.renewal = renewal_facts(rs);
            in.est = {cfg.est.server_url, cfg.est.ca_label};
            token_device_facts(*token, in.token_present, in.token_logged_in);
            in.tokens = token_facts(tokens.get(), identities.current());
            in.routes = route_facts(proxy.stats());
            auto doc = build_status(in);
            doc["export"] = exporter.status();
            doc["own_revocation"] = own_revocation.status_json();
            doc["revocation"] = revocation_status();
            doc["proxy"] = proxy_facts(proxy.stats());
            return doc;
        };
        auto metrics_doc = [&] {
            return metrics_text(proxy.stats(), renewer.status(), identities.current(), tokens.get(),
                                token_ops, health_level(status_doc())) +
                   exporter.metrics() + own_revocation.metrics() + revocation_metrics();
        };
        Parts parts{config_path, cfg,         identities, renewer,        tokens.get(),
                    status_doc,  metrics_doc, &notifier,  &exporter,      &proxy,
                    {},          {},          {},         &own_revocation};
        parts.adopt_tokens = [&](std::unique_ptr<token::TokenCache> cache) {
            tokens = std::move(cache);
            tokens_now = tokens.get();
            proxy.set_token_source(tokens.get());
            return tokens.get();
        };
        // After a reload applied [oauth]: the warm-up fetches for the new set of profiles.
        parts.oauth_applied = [&](const config::OAuth& oauth) {
            if (!tokens) return;
            if (!warmup) {
                warmup =
                    std::make_unique<TokenWarmup>(io, *tokens, profile_names(oauth), identities);
                warmup->start();
            } else {
                warmup->set_profiles(profile_names(oauth));
            }
        };
        register_commands(*admin, parts);
        admin->start();
        bool draining = false, finished = false;  // see the stopping sequence below
        auto health = [&] {
            auto doc = status_doc();
            nlohmann::json h{{"state", doc["state"]}, {"reasons", doc["reasons"]}};
            return MetricsHttp::Health{doc["state"] != "failing", h.dump()};
        };
        // Ready: requests can be served — an identity that is valid now and whose key is
        // on the token, and the proxy's listeners bound and accepting (not draining).
        auto ready = [&] {
            std::string why;
            auto id = identities.current();
            if (!id)
                why = "no client certificate yet (enrollment pending or failing)";
            else if (!id->valid_at(std::chrono::system_clock::now()))
                why = "the client certificate is not valid now";
            else if (auto problem = renewer.status().key_problem; !problem.empty())
                why = problem;
            else if (draining)
                why = "stopping: the proxy no longer accepts connections";
            nlohmann::json r{{"ready", why.empty()}};
            if (!why.empty()) r["reason"] = why;
            return MetricsHttp::Health{why.empty(), r.dump()};
        };
        auto make_metrics = [&](const std::string& listen) {  // binds; throws
            return std::make_shared<MetricsHttp>(io, listen, metrics_doc, health, ready);
        };
        std::shared_ptr<MetricsHttp> metrics_http;
        if (!cfg.metrics.listen.empty()) {
            metrics_http = make_metrics(cfg.metrics.listen);
            metrics_http->allow_hosts(cfg.metrics.allowed_hosts);
            metrics_http->start();
        }
        // Reload of [admin] and [metrics]: a new socket path or listen address is bound here
        // (before anything changes; throws when it cannot be); the commit starts it and stops
        // the old one. Same socket path: access settings, mode and group apply in place.
        parts.prepare_servers = [&](const config::Config& next) -> std::function<void()> {
            std::shared_ptr<admin::Server> new_admin;
            std::optional<admin::ServerOptions> same_admin;
            if (next.admin.socket != cfg.admin.socket) {
                new_admin = std::make_shared<admin::Server>(io, admin_options(next.admin));
                register_commands(*new_admin, parts);
                new_admin->bind();
            } else {
                same_admin = admin::Server::resolve(admin_options(next.admin));
            }
            std::shared_ptr<MetricsHttp> new_metrics;
            const bool metrics_changed = next.metrics.listen != cfg.metrics.listen;
            if (metrics_changed && !next.metrics.listen.empty())
                new_metrics = make_metrics(next.metrics.listen);
            return [&, new_admin, same_admin, new_metrics, metrics_changed,
                    metrics_hosts = next.metrics.allowed_hosts] {
                if (new_admin) {
                    new_admin->start();
                    admin->stop();
                    old_admins.push_back(std::move(admin));
                    admin = new_admin;
                } else {
                    admin->apply(*same_admin);
                }
                if (metrics_changed) {
                    if (new_metrics) new_metrics->start();
                    if (metrics_http) {
                        metrics_http->stop();
                        log::info("metrics.closed", {{"address", cfg.metrics.listen}});
                        old_metrics.push_back(std::move(metrics_http));
                    }
                    metrics_http = new_metrics;
                }
                if (metrics_http) metrics_http->allow_hosts(metrics_hosts);
            };
        };
        renewer.run();
        own_revocation.run();

        // Stopping (SIGTERM/SIGINT): STOPPING=1, the proxy stops accepting, requests in flight
        // get listener.drain_timeout to finish, then what remains is cut; a second signal
        // cuts at once. The admin socket and /metrics stay until the end. SIGHUP reloads,
        // except while draining (ignored: the process is going away).
        asio::steady_timer drain_timer(io);
        auto finish = [&] {
            if (finished) return;
            finished = true;
            drain_timer.cancel();
            notifier.stop();
            if (warmup) warmup->stop();
            proxy.stop();
            admin->stop();
            for (auto& a : old_admins) a->stop();
            if (metrics_http) metrics_http->stop();
            io.stop();
        };
        // Cut sessions end on the errors of their shut sockets; the drain's on_empty then
        // finishes. Should one not end, the loop stops 2 s later anyway.
        auto after_cut = [&] {
            drain_timer.expires_after(std::chrono::seconds(2));
            drain_timer.async_wait([&](net::error_code ec) {
                if (!ec) finish();
            });
        };
        asio::signal_set signals(io, SIGTERM, SIGINT, SIGHUP);
        std::function<void()> arm = [&] {
            signals.async_wait([&](net::error_code ec, int sig) {
                if (ec || finished) return;
                if (sig == SIGHUP) {
                    if (draining) {
                        log::info("agent.reload_ignored", {{"reason", "draining"}});
                    } else {
                        try {
                            reload(parts);
                        } catch (const std::exception& e) {
                            log::error("agent.reload_failed", {{"error", e.what()}});
                        }
                    }
                    arm();
                    return;
                }
                if (draining) {
                    const auto cut = proxy.cut_all();
                    log::warn("agent.drain_cut", {{"cut", cut}, {"signal", sig}});
                    after_cut();
                    arm();
                    return;
                }
                draining = true;
                log::info("agent.stopping", {{"signal", sig}});
                notifier.stopping();
                proxy.stop_accepting();
                const auto in_flight =
                    proxy.begin_drain([&] { asio::post(io, [&] { finish(); }); });
                log::info("agent.draining",
                          {{"in_flight", in_flight},
                           {"drain_timeout_ms", cfg.listener.drain_timeout.count()}});
                drain_timer.expires_after(cfg.listener.drain_timeout);
                drain_timer.async_wait([&](net::error_code tec) {
                    if (tec || finished) return;
                    const auto cut = proxy.cut_all();
                    log::warn(
                        "agent.drain_timeout",
                        {{"cut", cut}, {"drain_timeout_ms", cfg.listener.drain_timeout.count()}});
                    after_cut();
                });
                arm();
            });
        };
        arm();

        // STATUS= from the health verdict once a second, READY=1 once serving, watchdog.
        notifier.run(
            io, [&] { return Notifier::verdict(status_doc(), identities.current() != nullptr); });
        log::info("agent.ready", {{"admin", admin->path()}});
        io.run();
        // The proxy's worker threads (listener.workers >= 2) end before anything they use.
        proxy.join_workers();
        own_revocation.stop();
        renewer.stop();
        // The token cache goes while the io_context still exists: the waiters of requests in
        // flight (a session's, the warm-up's) are answered by posting to it.
        token_sub.reset();
        tokens.reset();
        log::info("agent.stopped");
        return 0;
    } catch (const std::exception& e) {
        log::error("agent.failed", {{"error", e.what()}});
        notify(std::string("STATUS=failing: ") + e.what());
        return 1;
    }
}

}  // namespace mtls::daemon
