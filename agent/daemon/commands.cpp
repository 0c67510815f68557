#include "agent/daemon/commands.hpp"

#include "agent/daemon/facts.hpp"
#include "agent/daemon/health.hpp"
#include "agent/daemon/notifier.hpp"
#include "agent/daemon/revocation_facts.hpp"
#include "agent/export/exporter.hpp"
#include "agent/identity/jwk.hpp"
#include "agent/net/asio.hpp"
#include "common/log.hpp"

#include <memory>
#include <optional>
#include <utility>

namespace mtls::daemon {
namespace {

namespace asio = net::asio;
using Json = nlohmann::json;

// Waits on the io_context for a result posted from another thread.
template <class T>
struct Rendezvous {
    explicit Rendezvous(asio::any_io_executor ex)
        : timer(ex, asio::steady_timer::time_point::max()) {}
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

Json outcome_json(const renewal::Outcome& o) {
    Json steps = Json::array();
    for (const auto& s : o.steps)
        steps.push_back({{"step", s.step}, {"status", s.status}, {"detail", s.detail}});
    return {{"ok", o.ok}, {"steps", steps}, {"message", o.message}};
}

// A token for every profile, bound to the current identity, as steps of `out`. A profile
// whose token cannot be had is a failed step (and named in the message): the new identity
// stays in place, the proxy retries the token on its next call.
net::awaitable<void> fetch_tokens(Parts& p, renewal::Outcome& out) {
    auto id = p.identities.current();
    if (!p.tokens || !id) co_return;
    std::vector<std::string> failed;
    for (const auto& profile : p.cfg.oauth.profiles) {
        auto result = co_await p.tokens->get(profile.name, id);
        if (const auto* err = std::get_if<token::TokenError>(&result)) {
            out.steps.push_back({"token", "failed", profile.name + ": " + err->message});
            failed.push_back(profile.name);
        } else {
            out.steps.push_back({"token", "ok", profile.name + ": bound to " + id->x5t_s256()});
        }
    }
    if (!failed.empty()) {
        out.message += "; no token yet for profile";
        for (const auto& f : failed) out.message += " " + f;
        out.message += " (see the token steps; the proxy retries on its next call)";
    }
}

// rotate --compromised: the identity is burnt at once (no request uses it any more: its
// connections are cut, its tokens dropped), then answered once the old key is gone from the
// token — or, with wait, once the new identity serves (its tokens fetched) or its enrollment
// failed (rotate_failed, saying what to do; the old key is gone all the same).
net::awaitable<Json> rotate_compromised(Parts& p, bool wait, const admin::PeerCred& peer) {
    const std::string reason =
        "declared compromised by an operator (mtls-agentctl rotate "
        "--compromised, uid " +
        std::to_string(peer.uid) + ")";
    const std::string problem =
        "our key was declared compromised (mtls-agentctl rotate --compromised at " +
        rfc3339(std::chrono::system_clock::now()) +
        "); its identity is no longer used; enrolling a new key with the bootstrap credentials";
    asio::any_io_executor ex = co_await asio::this_coro::executor;
    // (a Rendezvous must live until its delivery ran: only the awaited ones are made)
    auto destroyed = std::make_shared<Rendezvous<renewal::Outcome>>(ex);
    std::shared_ptr<Rendezvous<renewal::Outcome>> done;
    renewal::Renewer::Done on_done;
    if (wait) {
        done = std::make_shared<Rendezvous<renewal::Outcome>>(ex);
        on_done = [done](const renewal::Outcome& o) { done->deliver(o); };
    }
    p.renewer.compromised(
        "operator", reason, problem,
        [destroyed](const renewal::Outcome& o) { destroyed->deliver(o); }, std::move(on_done));
    auto gone = co_await destroyed->wait();
    if (!gone.ok && !gone.message.empty()) {  // the job ends here: its `done` comes at once
        if (done) co_await done->wait();
        throw admin::CommandError("rotate_failed", gone.message);
    }
    if (!wait) {
        Json out = outcome_json(gone);
        out["ok"] = true;
        out["message"] =
            "the old identity is no longer used (its connections were cut, its access tokens "
            "dropped) and its key is destroyed on the token; a new key is being enrolled with "
            "the bootstrap credentials — see mtls-agentctl status";
        co_return out;
    }
    auto out = co_await done->wait();
    if (!out.ok) throw admin::CommandError("rotate_failed", out.message);
    co_await fetch_tokens(p, out);
    co_return outcome_json(out);
}

// rotate / renew: queued, or (--wait) answered when the renewer has finished and the new
// certificate's tokens are fetched.
admin::Handler lifecycle(Parts& p, renewal::Renewer::Kind kind) {
    return [&p, kind](const Json& args, const admin::PeerCred& peer) -> net::awaitable<Json> {
        const bool rotate = kind == renewal::Renewer::Kind::rotate;
        if (rotate && args.value("compromised", false))
            co_return co_await rotate_compromised(p, args.value("wait", false), peer);
        if (!args.value("wait", false)) {
            p.renewer.request(kind, {});
            co_return Json{{"message", std::string(rotate ? "rotation" : "renewal") +
                                           " queued; see mtls-agentctl status"}};
        }
        // (co_await kept out of larger expressions: GCC 12 miscompiles temporaries there)
        asio::any_io_executor ex = co_await asio::this_coro::executor;
        auto rv = std::make_shared<Rendezvous<renewal::Outcome>>(ex);
        p.renewer.request(kind, [rv](const renewal::Outcome& o) { rv->deliver(o); });
        auto out = co_await rv->wait();
        if (!out.ok)
            throw admin::CommandError(rotate ? "rotate_failed" : "renew_failed", out.message);
        // Done means usable: the new certificate's tokens are fetched before the answer.
        co_await fetch_tokens(p, out);
        co_return outcome_json(out);
    };
}

}  // namespace

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
    if (a.state_dir != b.state_dir) out.push_back("[agent] state_dir");
    // The proxy's threads are made at start (each with its own sessions and pools).
    if (a.listener.workers != b.listener.workers) out.push_back("[listener] workers");
    return out;
}

void apply_logging(const config::Logging& l) {
    log::Level level = log::Level::info;
    log::parse_level(l.level, level);
    log::configure(level, l.format == "json" ? log::Format::json : log::Format::text);
    log::set_access_log(l.access_log);
}

namespace {

[[noreturn]] void reject_reload(const std::vector<std::string>& reasons) {
    std::string msg = "configuration rejected; the running one is kept:";
    for (const auto& e : reasons) msg += "\n  " + e;
    log::error("reload.rejected", {{"errors", reasons.size()}});
    throw admin::CommandError("reload_invalid", msg);
}

}  // namespace

Json reload(Parts& p) {
    if (p.notifier) p.notifier->reloading();
    // READY=1 when the reload is over, applied or rejected: systemd leaves "reloading".
    struct Reloaded {
        Notifier* n;
        ~Reloaded() {
            if (n) n->reloaded();
        }
    } reloaded{p.notifier};
    auto loaded = config::load_file(p.config_path);
    if (!loaded.config) {
        std::vector<std::string> reasons;
        for (const auto& e : loaded.errors) reasons.push_back(e.to_string());
        reject_reload(reasons);
    }
    const config::Config& next = *loaded.config;

    // 1. Prepare everything that can fail, changing nothing yet.
    std::vector<std::string> reasons;
    std::optional<proxy::PreparedRoutes> routes;
    if (p.proxy) {
        try {
            routes.emplace(p.proxy->prepare_routes(next.routes));
        } catch (const std::exception& e) {
            reasons.push_back(std::string("[[routes]]: ") + e.what());
        }
    }
    std::optional<proxy::PreparedListener> listener;
    if (p.proxy) {
        try {
            listener.emplace(p.proxy->prepare_listener(next.listener));
        } catch (const std::exception& e) {
            reasons.push_back(std::string("[listener]: ") + e.what());
        }
    }
    std::shared_ptr<const token::TokenCache::Conf> oauth;
    std::unique_ptr<token::TokenCache> new_tokens;  // the first [oauth] profiles
    try {
        if (p.tokens)
            oauth = p.tokens->prepare(next.oauth);
        else if (!next.oauth.profiles.empty() && p.adopt_tokens)
            new_tokens = std::make_unique<token::TokenCache>(next.oauth);
    } catch (const std::exception& e) {
        reasons.push_back(std::string("[oauth]: ") + e.what());
    }
    std::function<void()> servers;
    if (p.prepare_servers) {
        try {
            servers = p.prepare_servers(next);
        } catch (const std::exception& e) {
            reasons.push_back(std::string("[admin]/[metrics]: ") + e.what());
        }
    }
    if (!reasons.empty()) reject_reload(reasons);

    // 2. Apply it all (nothing below throws on a bad configuration).
    auto restart = needs_restart(p.cfg, next);
    p.renewer.update_config(next);
    if (p.own_revocation) p.own_revocation->update_config(next.renewal);
    apply_logging(next.logging);
    p.cfg.key = next.key;
    p.cfg.est = next.est;
    p.cfg.renewal = next.renewal;
    p.cfg.logging = next.logging;
    p.cfg.exports = next.exports;
    if (p.exporter) p.exporter->update_config(next);
    apply_revocation_config(next.revocation);  // CRL files re-read
    p.cfg.revocation = next.revocation;
    std::vector<std::string> applied{"[key]",    "[est]",     "[renewal]",
                                     "[export]", "[logging]", "[revocation]"};
    Json route_changes = Json::object();
    if (routes) {
        const auto c = routes->changes();
        p.proxy->commit_routes(std::move(*routes));
        p.cfg.routes = next.routes;
        applied.push_back("[[routes]]");
        route_changes = {{"added", c.added}, {"changed", c.changed}, {"removed", c.removed}};
    }
    if (listener) {
        p.proxy->commit_listener(std::move(*listener));
        const auto running_workers = p.cfg.listener.workers;  // until a restart
        p.cfg.listener = next.listener;
        p.cfg.listener.workers = running_workers;
        applied.push_back("[listener]");
    }
    if (oauth) p.tokens->apply(std::move(oauth));
    if (new_tokens) p.tokens = p.adopt_tokens(std::move(new_tokens));
    p.cfg.oauth = next.oauth;  // without profiles before and after, nothing uses it
    if (p.oauth_applied) p.oauth_applied(next.oauth);
    applied.push_back("[oauth]");
    if (servers) {
        servers();
        p.cfg.admin = next.admin;
        p.cfg.metrics = next.metrics;
        applied.push_back("[admin]");
        applied.push_back("[metrics]");
    }
    std::string msg = "reloaded:";
    for (const auto& s : applied) msg += " " + s;
    msg += " applied";
    if (routes) {
        const auto& rc = route_changes;
        msg += "; routes: " + std::to_string(rc["added"].size()) + " added, " +
               std::to_string(rc["changed"].size()) + " changed, " +
               std::to_string(rc["removed"].size()) + " removed";
    }
    if (!restart.empty()) {
        msg += "; changed but applied only after a restart:";
        for (const auto& s : restart) msg += " " + s;
    }
    log::info("reload.applied", {{"restart_needed", restart.size()}});
    return Json{{"message", msg},
                {"applied", applied},
                {"restart_needed", restart},
                {"routes", route_changes}};
}

void register_commands(admin::Server& admin, Parts& p) {
    admin.add_command("status", [&p](const Json&, const admin::PeerCred&) -> net::awaitable<Json> {
        co_return p.status();
    });
    admin.add_command(
        "cert",
        [&p](const Json& args, const admin::PeerCred&) -> net::awaitable<Json> {
            auto id = p.identities.current();
            if (!id) throw admin::CommandError("no_identity", "no certificate enrolled yet");
            Json out{{"pem", chain_pem(*id)}, {"certificates", 1 + id->chain().size()}};
            if (args.value("jwk", false)) out["jwk"] = identity::registration_jwk(*id);
            co_return out;
        },
        {{"jwk", Json::value_t::boolean}});
    const std::map<std::string, Json::value_t> wait_arg{{"wait", Json::value_t::boolean}};
    admin.add_command("rotate", lifecycle(p, renewal::Renewer::Kind::rotate),
                      {{"wait", Json::value_t::boolean}, {"compromised", Json::value_t::boolean}});
    admin.add_command("renew", lifecycle(p, renewal::Renewer::Kind::renew), wait_arg);
    admin.add_command("reload", [&p](const Json&, const admin::PeerCred&) -> net::awaitable<Json> {
        co_return reload(p);
    });
    admin.add_command(
        "tokens.flush", [&p](const Json&, const admin::PeerCred&) -> net::awaitable<Json> {
            if (p.tokens) p.tokens->flush();
            co_return Json{
                {"message", p.tokens ? "access tokens flushed" : "no token profiles configured"}};
        });
    admin.add_command("metrics", [&p](const Json&, const admin::PeerCred&) -> net::awaitable<Json> {
        co_return Json{{"text", p.metrics()}};
    });
}

}  // namespace mtls::daemon
