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
//
// Reload (on the io_context thread): prepare_routes() builds the new table without touching
// the running one (throws when a route is unusable); commit_routes() swaps it in at once.
// New requests use the new table; a request in flight finishes on the route it started with;
// a removed or changed route's pool drains (idle connections close now, busy ones when their
// request ends); an unchanged route keeps its pool, warm connections and counters.
#pragma once

#include "agent/identity/identity_store.hpp"
#include "agent/net/asio.hpp"
#include "agent/proxy/drain.hpp"
#include "agent/proxy/stats.hpp"
#include "agent/token/token_source.hpp"
#include "config/config.hpp"

#include <memory>
#include <string>
#include <vector>

namespace mtls::proxy {

struct ProxyContext;
struct AcceptState;
struct RouteSet;

// What a route reload changed, by route name.
struct RouteChanges {
    std::vector<std::string> added, changed, removed, kept;
};

// A new [listener], its new addresses already bound but not accepting yet
// (Proxy::prepare_listener).
class PreparedListener {
  public:
    ~PreparedListener();
    PreparedListener(PreparedListener&&) noexcept;

  private:
    friend class Proxy;
    struct Bound;
    PreparedListener();
    std::shared_ptr<const config::Listener> next_;
    std::unique_ptr<Bound> bound_;
};

// A new route table, built and checked but not in use yet (Proxy::prepare_routes).
class PreparedRoutes {
  public:
    ~PreparedRoutes();
    PreparedRoutes(PreparedRoutes&&) noexcept;
    const RouteChanges& changes() const { return changes_; }

  private:
    friend class Proxy;
    PreparedRoutes();
    std::shared_ptr<RouteSet> set_;
    RouteChanges changes_;
};

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

    // A route table for `routes`, compared with the running one (see the top). Changes
    // nothing; throws std::invalid_argument naming the route that is unusable.
    PreparedRoutes prepare_routes(const std::vector<config::Route>& routes) const;
    // Puts a prepared table in use. Call on the io_context thread. Never throws.
    void commit_routes(PreparedRoutes prepared);
    // A new [listener]: binds the addresses (and Unix socket path) that are not bound yet,
    // changing nothing else. Throws std::runtime_error naming the address that failed.
    PreparedListener prepare_listener(const config::Listener& next) const;
    // Accepts on the new sockets, then closes the ones no longer configured; new connections
    // get the new settings (timeouts, header limits, caps), open ones keep theirs.
    void commit_listener(PreparedListener prepared);

    // Our identities up to `through_generation` were burnt (IdentityStore::burn()): every
    // upstream connection made with one is closed, idle or busy — the requests in flight on
    // them fail (502 upstream_reset / 503 identity_compromised, or a cut response when the
    // head was already forwarded). Call on the io_context thread. Returns how many requests
    // in flight were cut.
    std::size_t cut_identity(std::uint64_t through_generation);

    // The token source for requests from now on (a reload that brings the first [oauth]
    // profiles). Call on the io_context thread; `tokens` outlives the proxy.
    void set_token_source(token::TokenSource* tokens);

    // The bound TCP endpoints (useful with port 0 in tests).
    std::vector<net::tcp::endpoint> tcp_endpoints() const;
    const ProxyStats& stats() const { return stats_; }
    // App connections open now (what listener.max_connections counts).
    std::size_t open_connections() const;

    // One bound TCP address ("127.0.0.1:8480" as configured).
    struct TcpListen {
        std::string address;
        std::shared_ptr<net::tcp::acceptor> acc;  // shared with its accept loop
    };

  private:
    void install_routes(PreparedRoutes prepared);
    std::unique_ptr<PreparedListener::Bound> bind_new(const config::Listener& next) const;
    void listen_on(std::unique_ptr<PreparedListener::Bound> bound);

    net::asio::io_context& io_;
    ProxyStats stats_;
    std::unique_ptr<ProxyContext> ctx_;
    std::unique_ptr<AcceptState> accept_;  // caps and log limiters of the accept loops
    std::vector<TcpListen> tcp_;
    std::shared_ptr<net::unix_socket::acceptor> unix_;  // shared with its accept loop
    std::string unix_path_;
    std::unique_ptr<net::asio::steady_timer> sweeper_;
    bool stopped_ = false;
};

}  // namespace mtls::proxy
