#include "agent/daemon/daemon.hpp"

#include "agent/admin/server.hpp"
#include "agent/daemon/facts.hpp"
#include "agent/daemon/metrics_http.hpp"
#include "agent/identity/identity_store.hpp"
#include "agent/net/asio.hpp"
#include "agent/proxy/proxy.hpp"
#include "agent/renewal/renewer.hpp"
#include "agent/token/token_cache.hpp"
#include "common/atomic_file.hpp"
#include "common/log.hpp"
#include "pkcs11/provider/provider.hpp"

#include <grp.h>
#include <systemd/sd-daemon.h>

#include <csignal>
#include <cstdlib>

namespace mtls::daemon {
namespace {

namespace asio = net::asio;

void notify(const std::string& state) { sd_notify(0, state.c_str()); }

// Waits on the io_context for a result posted from another thread.
template <class T>
struct Rendezvous {
    explicit Rendezvous(asio::any_io_executor ex) : timer(ex, asio::steady_timer::time_point::max()) {}
    asio::steady_timer timer;
    std::optional<T> value;
    void deliver(T v) {
        asio::post(timer.get_executor(), [this, v = std::move(v)]() mutable {
            value = std::move(v);
            timer.cancel();
        });
    }
    net::awaitable<T> wait() {
        while (!value) {
            net::error_code ec;
            co_await timer.async_wait(net::use_ec(ec));
        }
        co_return std::move(*value);
    }
};

nlohmann::json outcome_json(const renewal::Outcome& o) {
    nlohmann::json steps = nlohmann::json::array();
    for (const auto& s : o.steps)
        steps.push_back({{"step", s.step}, {"status", s.status}, {"detail", s.detail}});
    return {{"ok", o.ok}, {"steps", steps}, {"message", o.message}};
}

// Which sections a reload cannot apply to the running agent.
std::vector<std::string> needs_restart(const config::Config& a, const config::Config& b) {
    std::vector<std::string> out;
    auto section = [](const config::Config& c, auto pick) {
        config::Config only;
        pick(only, c);
        return config::render(only);
    };
    auto differs = [&](const char* name, auto pick) {
        if (section(a, pick) != section(b, pick)) out.push_back(name);
    };
    differs("[pkcs11]", [](config::Config& o, const config::Config& c) { o.pkcs11 = c.pkcs11; });
    differs("[listener]", [](config::Config& o, const config::Config& c) { o.listener = c.listener; });
    differs("[[routes]]", [](config::Config& o, const config::Config& c) { o.routes = c.routes; });
    differs("[oauth]", [](config::Config& o, const config::Config& c) { o.oauth = c.oauth; });
    differs("[admin]", [](config::Config& o, const config::Config& c) { o.admin = c.admin; });
    differs("[metrics]", [](config::Config& o, const config::Config& c) { o.metrics = c.metrics; });
    if (a.state_dir != b.state_dir) out.push_back("[agent] state_dir");
    return out;
}

void apply_logging(const config::Logging& l) {
    log::Level level = log::Level::info;
    log::parse_level(l.level, level);
    log::configure(level, l.format == "json" ? log::Format::json : log::Format::text);
}

}  // namespace

int run(const std::string& config_path, config::Config cfg) {
    apply_logging(cfg.logging);
    log::info("agent.starting", {{"version", MTLS_VERSION}, {"config", config_path}});
    try {
        files::ensure_dir(cfg.state_dir, 0700);

        // The token and its keys inside OpenSSL.
        auto token = pkcs11::Token::open(pkcs11::TokenOptions::from_config(cfg.pkcs11));
        auto provider = std::make_shared<pkcs11::ProviderContext>(token);
        log::info("agent.token_ready", {{"token", token->description()}});
        metrics::TokenOpMetrics token_ops;
        token->set_sign_observer([&token_ops](std::chrono::nanoseconds elapsed, bool ok) {
            token_ops.observe_sign(elapsed, ok);
        });
        struct ObserverReset {  // the token may outlive token_ops (shared with the provider)
            pkcs11::Token& t;
            ~ObserverReset() { t.set_sign_observer({}); }
        } observer_reset{*token};

        identity::IdentityStore identities;
        std::unique_ptr<token::TokenCache> tokens;
        if (!cfg.oauth.profiles.empty()) tokens = std::make_unique<token::TokenCache>(cfg.oauth);
        auto token_sub = identities.subscribe([&](const identity::IdentityPtr& now, const identity::IdentityPtr&) {
            if (tokens) tokens->identity_changed(now);
        });

        renewal::Renewer renewer(cfg, provider, identities);
        notify("STATUS=enrolling");
        auto first = renewer.start_up();
        if (!first.ok)
            log::error("agent.no_identity_yet",
                       {{"error", first.message}, {"action", "serving 503 no_identity; retrying"}});

        asio::io_context io(1);
        proxy::Proxy proxy(io, cfg.listener, cfg.routes, identities, tokens.get());
        proxy.start();

        admin::ServerOptions aopt;
        aopt.listener.path = cfg.admin.socket;
        aopt.listener.mode = cfg.admin.mode;
        aopt.listener.group = cfg.admin.group;
        aopt.policy.allowed_uids = cfg.admin.allowed_uids;
        aopt.policy.allowed_gids = cfg.admin.allowed_gids;
        admin::Server admin(io, aopt);

        const std::string token_uri = token->token_uri();
        auto status_doc = [&] {
            StatusInputs in;
            in.now = std::chrono::system_clock::now();
            in.version = MTLS_VERSION;
            auto rs = renewer.status();
            if (auto id = identities.current())
                in.identity = identity_facts(*id, rs.key_type, token_uri);
            in.renewal = renewal_facts(rs);
            token_device_facts(*token, in.token_present, in.token_logged_in);
            in.tokens = token_facts(tokens.get());
            in.routes = route_facts(proxy.stats());
            return build_status(in);
        };
        using Json = nlohmann::json;
        admin.add_command("status", [&](const Json&, const admin::PeerCred&) -> net::awaitable<Json> {
            co_return status_doc();
        });
        admin.add_command("cert", [&](const Json&, const admin::PeerCred&) -> net::awaitable<Json> {
            auto id = identities.current();
            if (!id) throw admin::CommandError("no_identity", "no certificate enrolled yet");
            co_return Json{{"pem", chain_pem(*id)}};
        });
        auto lifecycle = [&](renewal::Renewer::Kind kind) {
            return [&, kind](const Json& args, const admin::PeerCred&) -> net::awaitable<Json> {
                bool wait = args.value("wait", false);
                const char* what = kind == renewal::Renewer::Kind::rotate ? "rotation" : "renewal";
                if (!wait) {
                    renewer.request(kind, {});
                    co_return Json{{"message", std::string(what) + " queued; see mtls-agentctl status"}};
                }
                // (co_await kept out of larger expressions: GCC 12 miscompiles temporaries there)
                asio::any_io_executor ex = co_await asio::this_coro::executor;
                auto rv = std::make_shared<Rendezvous<renewal::Outcome>>(ex);
                renewer.request(kind, [rv](const renewal::Outcome& o) { rv->deliver(o); });
                auto out = co_await rv->wait();
                if (!out.ok)
                    throw admin::CommandError(std::string(kind == renewal::Renewer::Kind::rotate ? "rotate" : "renew") + "_failed",
                                              out.message);
                co_return outcome_json(out);
            };
        };
        admin.add_command("rotate", lifecycle(renewal::Renewer::Kind::rotate));
        admin.add_command("renew", lifecycle(renewal::Renewer::Kind::renew));
        auto reload = [&]() -> Json {
            auto loaded = config::load_file(config_path);
            if (!loaded.config) {
                std::string msg = "configuration rejected; the running one is kept:";
                for (const auto& e : loaded.errors) msg += "\n  " + e.to_string();
                log::error("agent.reload_rejected", {{"errors", loaded.errors.size()}});
                throw admin::CommandError("reload_invalid", msg);
            }
            auto restart = needs_restart(cfg, *loaded.config);
            renewer.update_config(*loaded.config);
            apply_logging(loaded.config->logging);
            cfg.key = loaded.config->key;
            cfg.est = loaded.config->est;
            cfg.renewal = loaded.config->renewal;
            cfg.logging = loaded.config->logging;
            std::string msg = "reloaded: [key], [est], [renewal] and [logging] applied";
            if (!restart.empty()) {
                msg += "; changed but applied only after a restart:";
                for (const auto& s : restart) msg += " " + s;
            }
            log::info("agent.reloaded", {{"restart_needed", restart.size()}});
            return Json{{"message", msg}, {"restart_needed", restart}};
        };
        admin.add_command("reload", [&](const Json&, const admin::PeerCred&) -> net::awaitable<Json> {
            co_return reload();
        });
        admin.add_command("tokens.flush", [&](const Json&, const admin::PeerCred&) -> net::awaitable<Json> {
            if (tokens) tokens->flush();
            co_return Json{{"message", tokens ? "access tokens flushed" : "no token profiles configured"}};
        });
        auto metrics_doc = [&] {
            return metrics_text(proxy.stats(), renewer.status(), identities.current(), tokens.get(),
                                token_ops);
        };
        admin.add_command("metrics", [&](const Json&, const admin::PeerCred&) -> net::awaitable<Json> {
            co_return Json{{"text", metrics_doc()}};
        });
        admin.start();
        std::unique_ptr<MetricsHttp> metrics_http;
        if (!cfg.metrics.listen.empty()) {
            metrics_http = std::make_unique<MetricsHttp>(
                io, cfg.metrics.listen,
                metrics_doc,
                [&] {
                    auto doc = status_doc();
                    Json h{{"state", doc["state"]}, {"reasons", doc["reasons"]}};
                    return MetricsHttp::Health{doc["state"] != "failing", h.dump()};
                });
        }
        renewer.run();

        // Signals: TERM/INT stop, HUP reloads.
        asio::signal_set signals(io, SIGTERM, SIGINT, SIGHUP);
        std::function<void()> arm = [&] {
            signals.async_wait([&](net::error_code ec, int sig) {
                if (ec) return;
                if (sig == SIGHUP) {
                    try {
                        reload();
                    } catch (const std::exception& e) {
                        log::error("agent.reload_failed", {{"error", e.what()}});
                    }
                    arm();
                    return;
                }
                log::info("agent.stopping", {{"signal", sig}});
                notify("STOPPING=1");
                proxy.stop();
                admin.stop();
                if (metrics_http) metrics_http->stop();
                io.stop();
            });
        };
        arm();

        // systemd watchdog: ping at half the configured interval while the loop turns.
        uint64_t wd_usec = 0;
        asio::steady_timer watchdog(io);
        std::function<void()> ping = [&] {
            notify("WATCHDOG=1");
            watchdog.expires_after(std::chrono::microseconds(wd_usec / 2));
            watchdog.async_wait([&](net::error_code ec) {
                if (!ec) ping();
            });
        };
        if (sd_watchdog_enabled(0, &wd_usec) > 0 && wd_usec > 0) ping();

        notify("READY=1\nSTATUS=" + std::string(identities.current() ? "serving" : "serving without identity (enrollment pending)"));
        log::info("agent.ready", {{"admin", cfg.admin.socket}});
        io.run();
        renewer.stop();
        log::info("agent.stopped");
        return 0;
    } catch (const std::exception& e) {
        log::error("agent.failed", {{"error", e.what()}});
        notify(std::string("STATUS=failed: ") + e.what());
        return 1;
    }
}

}  // namespace mtls::daemon
