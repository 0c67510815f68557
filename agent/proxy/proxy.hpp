// The loopback HTTP -> partner mTLS proxy, as the daemon uses it:
//
//   net::asio::io_context io;                 // declare before the proxy
//   identity::IdentityStore identities;       // renewal publishes snapshots here
//   MyTokenSource tokens;                     // token::TokenSource (agent/token/)
//   proxy::Proxy proxy(io, cfg.listener, cfg.routes, identities, &tokens);
//   proxy.start();                            // binds; throws std::runtime_error on failure
//   io.run();                                 // one thread: the proxy is single-threaded
//   …  asio::post(io, [&]{ proxy.stop(); });  // stop accepting; sessions finish their work
//   (graceful: proxy.stop_accepting(); proxy.drain().begin(on_empty); … drain().cut_all())
//
// The proxy reads identities.current() per request and builds new TLS contexts on a
// rotation by itself (no subscription needed). stats() may be read from any thread.
#pragma once

#include "agent/identity/identity_store.hpp"
#include "agent/net/asio.hpp"
#include "agent/proxy/drain.hpp"
#include "agent/proxy/stats.hpp"
#include "agent/token/token_source.hpp"
#include "config/config.hpp"

#include <memory>
#include <vector>

namespace mtls::proxy {

struct ProxyContext;
struct AcceptState;

class Proxy {
  public:
    // Throws std::invalid_argument when a route is unusable (bad upstream URL, …).
    Proxy(net::asio::io_context& io, const config::Listener& listener,
          const std::vector<config::Route>& routes, identity::IdentityStore& identities,
          token::TokenSource* tokens);
    ~Proxy();
    Proxy(const Proxy&) = delete;
    Proxy& operator=(const Proxy&) = delete;

    // Binds the TCP addresses and the Unix socket, starts accepting. Throws
    // std::runtime_error naming the address that failed.
    void start();
    // Stops accepting and closes idle upstream connections. Call on the io_context thread.
    void stop();
    // Closes the listening sockets only (a graceful stop's first step: the sessions go on,
    // see drain()). Call on the io_context thread.
    void stop_accepting();
    // The open app connections, for a graceful stop (drain.hpp).
    Drain& drain();

    // The bound TCP endpoints (useful with port 0 in tests).
    std::vector<net::tcp::endpoint> tcp_endpoints() const;
    const ProxyStats& stats() const { return stats_; }
    // App connections open now (what listener.max_connections counts).
    std::size_t open_connections() const;

  private:
    net::asio::io_context& io_;
    ProxyStats stats_;
    std::unique_ptr<ProxyContext> ctx_;
    std::unique_ptr<AcceptState> accept_;  // caps and log limiters of the accept loops
    std::vector<net::tcp::acceptor> tcp_;
    std::unique_ptr<net::unix_socket::acceptor> unix_;
    std::unique_ptr<net::asio::steady_timer> sweeper_;
    bool stopped_ = false;
};

}  // namespace mtls::proxy
