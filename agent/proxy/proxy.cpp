#include "agent/proxy/proxy.hpp"

#include "agent/net/accept_guard.hpp"
#include "agent/net/conn_caps.hpp"
#include "agent/proxy/errors.hpp"
#include "agent/proxy/listener.hpp"
#include "agent/proxy/session.hpp"
#include "agent/proxy/upstream_pool.hpp"
#include "common/log.hpp"
#include "common/rate_limited_log.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <sstream>

namespace mtls::proxy {
namespace {

// A connection over a cap, or one shed at EMFILE: 503 too_many_connections, sent without
// blocking before the connection closes.
std::string refusal(const std::string& message) {
    ProxyError e{net::http::status::service_unavailable, "too_many_connections", message};
    auto res = error_response(e, 11, false);
    res.set(net::http::field::retry_after, "1");
    std::ostringstream out;
    out << res;
    return out.str();
}

const char* reason_name(net::ConnectionCaps::Refusal r) {
    return r == net::ConnectionCaps::Refusal::per_caller ? "max_connections_per_caller"
                                                         : "max_connections";
}

}  // namespace

// What the accept loops share: the caps, the refusal answers and the rate-limited log lines
// (a flood of refused connections or failing accepts writes one line per interval).
struct AcceptState {
    AcceptState(net::ConnectionCaps::Limits limits, std::uint64_t nofile)
        : caps(limits),
          fd_reply(refusal("the agent has run out of file descriptors (RLIMIT_NOFILE " +
                           std::to_string(nofile) +
                           "); try again later, or raise LimitNOFILE= / lower "
                           "listener.max_connections")) {}
    net::ConnectionCaps caps;
    const std::string fd_reply;
    log::RateLimited accept_failed{log::Level::warning, "proxy.accept_failed",
                                   std::chrono::seconds(5)};
    log::RateLimited refused{log::Level::warning, "proxy.connection_refused",
                             std::chrono::seconds(5)};
};

namespace {

// One admitted connection's session; the slot is given back when it ends.
net::awaitable<void> serve(net::ConnectionCaps::Slot slot, ClientSocket sock, ProxyContext& ctx,
                           Caller caller) {
    co_await run_session(std::move(sock), ctx, std::move(caller));
    (void)slot;
}

// Accepts app connections (TCP or Unix socket) and serves each in its own session coroutine,
// over a generic stream socket: one session type for both. `caller_of` says who connected
// (address, or uid/gids for the per-route checks), `key_of` which per-caller cap counts it.
// Over a cap the connection is answered 503 at once and closed; out of descriptors, the
// waiting connections are refused that way and accepting pauses (10 ms doubling to 1 s).
template <class Acceptor, class CallerOf, class KeyOf>
net::awaitable<void> accept_loop(Acceptor& acc, ProxyContext& ctx, AcceptState& st,
                                 CallerOf caller_of, KeyOf key_of) {
    net::AcceptBackoff backoff;
    net::asio::steady_timer pause(acc.get_executor());
    bool failing = false;
    for (;;) {
        net::error_code ec;
        auto sock = co_await acc.async_accept(net::use_ec(ec));
        if (ec == net::asio::error::operation_aborted || !acc.is_open()) co_return;
        if (ec) {
            if (!net::out_of_descriptors(ec)) {
                st.accept_failed.write({{"error", ec.message()}});
                continue;
            }
            failing = true;
            ctx.stats.refused_no_fds += net::shed_pending(acc.native_handle(), st.fd_reply);
            const auto wait = backoff.next();
            st.accept_failed.write({{"error", ec.message()},
                                    {"action", "refusing connections, pausing accepts"},
                                    {"pause_ms", wait.count()},
                                    {"open", st.caps.open()}});
            pause.expires_after(wait);
            co_await pause.async_wait(net::use_ec(ec));
            if (!acc.is_open()) co_return;
            continue;
        }
        if (failing) {
            failing = false;
            backoff.reset();
            st.accept_failed.flush({{"error", "out of file descriptors"}});
            log::info("proxy.accept_resumed", {{"open", st.caps.open()}});
        }
        const std::string key = key_of(sock);
        auto admission = st.caps.admit(key, false);
        if (!admission.slot) {
            const bool per_caller = admission.refusal == net::ConnectionCaps::Refusal::per_caller;
            ++(per_caller ? ctx.stats.refused_per_caller : ctx.stats.refused_total);
            const auto limit = per_caller ? st.caps.limits().per_caller : st.caps.limits().total;
            const std::string key_name = std::string("listener.") + reason_name(admission.refusal);
            st.refused.write({{"reason", reason_name(admission.refusal)},
                              {"caller", key},
                              {"open", admission.open},
                              {"limit", limit}});
            net::refuse(
                sock.native_handle(),
                refusal(std::string(per_caller ? "this caller" : "the proxy") + " has " +
                        std::to_string(admission.open) + " connections open, the most allowed (" +
                        key_name + " = " + std::to_string(limit) +
                        "); close idle connections or raise " + key_name));
            continue;  // sock closes
        }
        Caller caller = caller_of(sock);
        net::asio::co_spawn(
            acc.get_executor(),
            serve(std::move(admission.slot), ClientSocket(std::move(sock)), ctx, std::move(caller)),
            net::asio::detached);
    }
}

std::string tcp_key(const net::tcp::socket& s) {
    net::error_code ec;
    auto ep = s.remote_endpoint(ec);
    return ec ? std::string("tcp:unknown") : ep.address().to_string();
}

std::string unix_key(const net::unix_socket::socket& s) {
    struct ucred cred {};
    socklen_t len = sizeof cred;
    int fd = const_cast<net::unix_socket::socket&>(s).native_handle();
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return "uid:unknown";
    return "uid:" + std::to_string(cred.uid);
}

Caller tcp_caller_no_delay(net::tcp::socket& s) {
    net::error_code ec;
    s.set_option(net::tcp::no_delay(true), ec);
    return tcp_caller(s);
}

net::awaitable<void> sweep_pools(net::asio::steady_timer& timer, ProxyContext& ctx) {
    for (;;) {
        timer.expires_after(std::chrono::seconds(1));
        net::error_code ec;
        co_await timer.async_wait(net::use_ec(ec));
        if (ec) co_return;
        for (auto& p : ctx.pools) p->sweep();
    }
}

}  // namespace

Proxy::Proxy(net::asio::io_context& io, const config::Listener& listener,
             const std::vector<config::Route>& routes, identity::IdentityStore& identities,
             token::TokenSource* tokens)
    : io_(io) {
    ctx_ = std::unique_ptr<ProxyContext>(
        new ProxyContext{listener, RouteTable(routes), {}, identities, tokens, stats_, {}});
    for (const auto& e : ctx_->routes.routes()) stats_.routes.emplace_back(e.route.name);
    for (std::size_t i = 0; i < ctx_->routes.routes().size(); ++i)
        ctx_->pools.push_back(std::make_unique<UpstreamPool>(
            io.get_executor(), ctx_->routes.routes()[i], stats_.routes[i]));
}

Proxy::~Proxy() {
    if (!stopped_) stop();
}

std::size_t Proxy::open_connections() const {
    return accept_ ? accept_->caps.open() : 0;
}

void Proxy::start() {
    const auto& l = ctx_->listener;
    const std::uint64_t nofile = net::nofile_limit();
    const auto derived = net::derive_caps(nofile);
    net::ConnectionCaps::Limits limits;
    limits.total = l.max_connections ? l.max_connections : derived.total;
    // Derived: a quarter of the total (of the configured one, when only that is set).
    limits.per_caller = l.max_connections_per_caller ? l.max_connections_per_caller
                                                     : std::max<std::size_t>(1, limits.total / 4);
    accept_ = std::make_unique<AcceptState>(limits, nofile);
    net::reserve_spare_fd();
    log::info("proxy.connection_caps", {{"max_connections", limits.total},
                                        {"max_connections_per_caller", limits.per_caller},
                                        {"rlimit_nofile", nofile}});
    if (l.max_connections > derived.total)
        log::warn("proxy.connection_caps_above_fd_limit",
                  {{"max_connections", l.max_connections},
                   {"rlimit_nofile", nofile},
                   {"action",
                    "at EMFILE connections are refused and accepting pauses; raise "
                    "LimitNOFILE= or lower listener.max_connections"}});
    tcp_ = bind_tcp(io_, ctx_->listener);
    if (!ctx_->listener.unix_socket.empty())
        unix_ = std::make_unique<net::unix_socket::acceptor>(bind_unix(io_, ctx_->listener));
    for (auto& acc : tcp_) {
        net::error_code ec;
        auto ep = acc.local_endpoint(ec);
        log::info("proxy.listening", {{"address", ep.address().to_string()}, {"port", ep.port()}});
        net::asio::co_spawn(io_, accept_loop(acc, *ctx_, *accept_, tcp_caller_no_delay, tcp_key),
                            net::asio::detached);
    }
    if (unix_) {
        log::info("proxy.listening", {{"unix_socket", ctx_->listener.unix_socket}});
        net::asio::co_spawn(io_, accept_loop(*unix_, *ctx_, *accept_, unix_caller, unix_key),
                            net::asio::detached);
    }
    sweeper_ = std::make_unique<net::asio::steady_timer>(io_);
    net::asio::co_spawn(io_, sweep_pools(*sweeper_, *ctx_), net::asio::detached);
}

void Proxy::stop_accepting() {
    net::error_code ec;
    for (auto& acc : tcp_) acc.close(ec);
    if (unix_ && unix_->is_open()) {
        unix_->close(ec);
        ::unlink(ctx_->listener.unix_socket.c_str());
    }
}

Drain& Proxy::drain() {
    return ctx_->drain;
}

void Proxy::stop() {
    stopped_ = true;
    stop_accepting();
    if (sweeper_) sweeper_->cancel();
    for (auto& p : ctx_->pools) p->close_all();
}

std::vector<net::tcp::endpoint> Proxy::tcp_endpoints() const {
    std::vector<net::tcp::endpoint> out;
    for (const auto& acc : tcp_) {
        net::error_code ec;
        auto ep = acc.local_endpoint(ec);
        if (!ec) out.push_back(ep);
    }
    return out;
}

}  // namespace mtls::proxy
