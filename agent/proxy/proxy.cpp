#include "agent/proxy/proxy.hpp"

#include "agent/proxy/listener.hpp"
#include "agent/proxy/session.hpp"
#include "agent/proxy/upstream_pool.hpp"
#include "common/log.hpp"

namespace mtls::proxy {
namespace {

// Accepts app connections (TCP or Unix socket) and serves each in its own session coroutine,
// over a generic stream socket: one session type for both. `caller_of` says who connected
// (address, or uid/gids for the per-route checks).
template <class Acceptor, class CallerOf>
net::awaitable<void> accept_loop(Acceptor& acc, ProxyContext& ctx, CallerOf caller_of) {
    for (;;) {
        net::error_code ec;
        auto sock = co_await acc.async_accept(net::use_ec(ec));
        if (ec == net::asio::error::operation_aborted || !acc.is_open()) co_return;
        if (ec) {
            log::warn("proxy.accept_failed", {{"error", ec.message()}});
            continue;
        }
        Caller caller = caller_of(sock);
        net::asio::co_spawn(acc.get_executor(),
                            run_session(ClientSocket(std::move(sock)), ctx, std::move(caller)),
                            net::asio::detached);
    }
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
        new ProxyContext{listener, RouteTable(routes), {}, identities, tokens, stats_});
    for (const auto& e : ctx_->routes.routes()) stats_.routes.emplace_back(e.route.name);
    for (std::size_t i = 0; i < ctx_->routes.routes().size(); ++i)
        ctx_->pools.push_back(std::make_unique<UpstreamPool>(
            io.get_executor(), ctx_->routes.routes()[i], stats_.routes[i]));
}

Proxy::~Proxy() {
    if (!stopped_) stop();
}

void Proxy::start() {
    tcp_ = bind_tcp(io_, ctx_->listener);
    if (!ctx_->listener.unix_socket.empty())
        unix_ = std::make_unique<net::unix_socket::acceptor>(bind_unix(io_, ctx_->listener));
    for (auto& acc : tcp_) {
        net::error_code ec;
        auto ep = acc.local_endpoint(ec);
        log::info("proxy.listening", {{"address", ep.address().to_string()}, {"port", ep.port()}});
        net::asio::co_spawn(io_, accept_loop(acc, *ctx_, tcp_caller_no_delay), net::asio::detached);
    }
    if (unix_) {
        log::info("proxy.listening", {{"unix_socket", ctx_->listener.unix_socket}});
        net::asio::co_spawn(io_, accept_loop(*unix_, *ctx_, unix_caller), net::asio::detached);
    }
    sweeper_ = std::make_unique<net::asio::steady_timer>(io_);
    net::asio::co_spawn(io_, sweep_pools(*sweeper_, *ctx_), net::asio::detached);
}

void Proxy::stop() {
    stopped_ = true;
    net::error_code ec;
    for (auto& acc : tcp_) acc.close(ec);
    if (unix_) {
        unix_->close(ec);
        ::unlink(ctx_->listener.unix_socket.c_str());
    }
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
