// The loopback HTTP -> partner mTLS proxy, as the daemon uses it:
//
//   net::asio::io_context io;                 // declare before the proxy
//   identity::IdentityStore identities;       // renewal publishes snapshots here
//   MyTokenSource tokens;                     // token::TokenSource (agent/token/)
//   proxy::Proxy proxy(io, cfg.listener, cfg.routes, identities, &tokens);
//   proxy.start();                            // binds; throws std::runtime_error on failure
//   io.run();                                 // the accepting thread (see Threads below)
//   …  asio::post(io, [&]{ proxy.stop(); });  // stop accepting; sessions finish their work
//   proxy.join_workers();                     // after io.run() returned
//   (graceful: proxy.stop_accepting(); proxy.begin_drain(on_empty); … proxy.cut_all())
//
// Threads (listener.workers = N): the listeners and their accept loops run on `io` (the
// caller's thread, with the admin socket and the timers); each accepted connection goes to
// one of N workers — the one with the fewest open connections — and its session runs there
// to its end. A worker is an event loop with its own sessions, upstream pools, body buffers
// and drain; with N = 1 the one worker is `io` itself (no thread of its own, no hop), with
// N >= 2 each worker is a thread of its own, started by start(). Shared by the workers,
// and safe for it: the identity store (mutex), the token source (TokenCache: mutex,
// single-flight, each waiter resumed on its own executor), the revocation gate and checker
// (mutexes), the counters (atomics: stats() are the sums over the workers) and the
// connection caps (mutex). The methods below marked "on the io_context thread" run their
// work on every worker and return when every worker has done it. With N >= 2 the sessions
// are no work of `io`: once the listeners are closed, io.run() may return while sessions
// still run on the workers — keep `io` busy (the daemon's signal set, a work guard) until
// it is stopped on purpose.
//
// The proxy reads identities.current() per request and builds new TLS contexts on a
// rotation by itself (no subscription needed). stats() may be read from any thread.
//
// Reload (on the io_context thread): prepare_routes() builds the new table without touching
// the running one (throws when a route is unusable); commit_routes() swaps it in at once.
// New requests use the new table; a request in flight finishes on the route it started with;
// a removed or changed route's pool drains (idle connections close now, busy ones when their
// request ends); an unchanged route keeps its pool, warm connections and counters.
// listener.workers is fixed at construction (a reload that changes it needs a restart).
#pragma once

#include "agent/identity/identity_store.hpp"
#include "agent/net/asio.hpp"
#include "agent/proxy/drain.hpp"
#include "agent/proxy/stats.hpp"
#include "agent/token/token_source.hpp"
#include "config/config.hpp"

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace mtls::proxy {

struct ProxyContext;
struct ProxyWorker;
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
    std::vector<std::shared_ptr<RouteSet>> sets_;  // one per worker (its own pools)
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
    // The worker threads end once their sessions have (see join_workers()).
    void stop();
    // After io.run() returned: stops the worker threads and waits for them. Sessions still
    // open there are abandoned (destroyed with the proxy). Idempotent; the destructor calls it.
    void join_workers();
    // Closes the listening sockets only (a graceful stop's first step: the sessions go on,
    // see begin_drain()). Call on the io_context thread.
    void stop_accepting();
    // Graceful stop of the open app connections on every worker (drain.hpp: Drain::begin).
    // `on_empty` runs once no connection is open on any worker — on the thread of the worker
    // whose last connection ended, or here: post from it. Returns the requests in flight.
    // Call on the io_context thread.
    std::size_t begin_drain(std::function<void()> on_empty);
    // Cuts every open app connection on every worker; returns how many were inside a request.
    // Call on the io_context thread.
    std::size_t cut_all();
    // listener.workers: the event loops sessions run on.
    std::size_t workers() const;

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
    // Runs f(worker) on every worker's thread and returns when all have run it (directly
    // when no worker thread runs: one worker, before start(), after join_workers()).
    template <class F>
    void on_each_worker(F f);
    // The workers' own event loops (none with one worker), for the accept loops to hold.
    std::vector<std::shared_ptr<net::asio::io_context>> worker_loops() const;
    std::unique_ptr<PreparedListener::Bound> bind_new(const config::Listener& next) const;
    void listen_on(std::unique_ptr<PreparedListener::Bound> bound);

    net::asio::io_context& io_;
    ProxyStats stats_;
    std::vector<std::unique_ptr<ProxyWorker>> workers_;  // fixed at construction
    bool threads_running_ = false;
    std::shared_ptr<const config::Listener> listener_;  // the one in use (this thread's view)
    std::unique_ptr<AcceptState> accept_;               // caps and log limiters of the accept loops
    std::vector<TcpListen> tcp_;
    std::shared_ptr<net::unix_socket::acceptor> unix_;  // shared with its accept loop
    std::string unix_path_;
    bool stopped_ = false;
};

}  // namespace mtls::proxy
