// The upstream connections of one route: idle ones are reused (newest first), dead or
// expired ones dropped, at most route.pool_max open at once (callers wait for a slot up to
// the connect timeout). A pooled connection never carries bytes into another exchange: it
// is pooled only when nothing follows the response, checked again before every reuse (one
// non-blocking read), and watched while it stays idle (readable: TLS-only records are
// consumed, application data or EOF close it, as nginx and haproxy do) — armed by the next
// sweep, so a connection reused within a second costs no wait. Connections belong to the identity
// they were opened with: after a rotation the pool builds a new TLS context and never hands out an
// old-identity connection again; old ones finish their request and are closed when released. A
// reload that removes or changes the route retires its pool: idle connections close at once, busy
// ones when released (the pool drains; a changed route gets a new pool). Single-threaded: every
// proxy worker has its own pool per route (proxy.hpp, Threads), used from that worker's thread
// only.
#pragma once

#include "agent/identity/identity.hpp"
#include "agent/proxy/errors.hpp"
#include "agent/proxy/router.hpp"
#include "agent/proxy/stats.hpp"
#include "agent/proxy/upstream_connection.hpp"
#include "agent/proxy/upstream_resolver.hpp"

#include <list>
#include <memory>
#include <mutex>
#include <vector>

namespace mtls::proxy {

// What the pools of one route on the different proxy workers share (proxy.hpp, Threads):
// the TLS client context of the newest identity, with its session cache (a ticket one
// worker received resumes a connection another worker opens), and the partner host's
// addresses (the name cache). Thread-safe.
struct RouteUpstream {
    explicit RouteUpstream(const RouteTable::Entry& e)
        : resolver(e.target, e.route.timeouts.dns_ttl) {}
    UpstreamResolver resolver;
    std::mutex mu;
    std::shared_ptr<TlsClientContext> tls;  // under mu
};

class UpstreamPool {
  public:
    // Keeps its own copy of the route; counts into `stats` (shared with a newer pool of the
    // same route after a reload, and with the route's pools on the other workers: the
    // gauges are the sum of all). `shared`: the route's TLS context and name cache, shared
    // with those pools (null: the pool's own).
    UpstreamPool(net::asio::any_io_executor ex, RouteTable::Entry entry,
                 std::shared_ptr<RouteStats> stats,
                 std::shared_ptr<RouteUpstream> shared = nullptr);
    ~UpstreamPool();

    struct Lease {
        std::unique_ptr<UpstreamConnection> conn;
        bool reused = false;
    };
    // A connection for `id`: an idle one that received nothing since its last response, or
    // a new one. On failure conn is null and `err` set.
    net::awaitable<Lease> acquire(identity::IdentityPtr id, ProxyError& err);
    // acquire()'s first step without a coroutine: an idle connection for `id`, if one can be
    // reused now; else conn is null (and `err` set when no TLS context could be made).
    Lease take_idle(const identity::IdentityPtr& id, ProxyError& err);

    // Gives a connection back. reusable: the exchange ended cleanly and both sides keep
    // the connection alive; it is pooled only if nothing more arrived after the response.
    void release(std::unique_ptr<UpstreamConnection> conn, bool reusable);

    // Closes idle connections past the idle timeout, of an old identity or closed, and arms
    // the idle wait of those pooled since the last sweep (the proxy sweeps every second).
    void sweep();
    // Our identities up to `through_generation` were burnt (declared compromised, or the
    // certificate revoked): their idle connections close, and so do the busy ones — the
    // request in flight on one fails (the app gets a 502/503 or a cut response). Returns how
    // many busy connections were cut.
    std::size_t cut_generation(std::uint64_t through_generation);
    void close_all();
    // The route was removed or changed by a reload: closes the idle connections; busy ones
    // are closed when released instead of pooled.
    void retire();

    std::size_t idle() const { return idle_.size(); }
    std::size_t busy() const { return busy_; }

  private:
    std::shared_ptr<TlsClientContext> context_for(const identity::IdentityPtr& id, ProxyError& err);
    void update_gauges();
    // The newest idle connection of `id`'s generation that is still good, or null.
    std::unique_ptr<UpstreamConnection> reusable_idle(const identity::IdentityPtr& id);
    void wake_one();
    // Arms the idle wait of a pooled connection; on_idle_input runs when it fires.
    void watch(UpstreamConnection& c);
    void on_idle_input(UpstreamConnection* c, std::uint64_t id, const net::error_code& ec);
    // Logs why a connection with a leftover is not reused (`when`: after_response, idle,
    // before_reuse).
    void report(UpstreamConnection::Leftover left, const char* when);

    net::asio::any_io_executor ex_;
    const RouteTable::Entry entry_;
    std::shared_ptr<RouteStats> stats_;
    bool retired_ = false;
    std::uint64_t shown_idle_ = 0, shown_busy_ = 0;          // what this pool added to the gauges
    std::shared_ptr<RouteUpstream> shared_;                  // TLS context and name cache
    std::shared_ptr<TlsClientContext> tls_;                  // for the current identity
    UpstreamResolver& resolver_;                             // shared_->resolver
    std::vector<std::unique_ptr<UpstreamConnection>> idle_;  // back = most recently used
    std::size_t busy_ = 0;
    // The leased connections (each removes itself when destroyed), for cut_generation().
    std::shared_ptr<UpstreamConnection::Registry> leased_ =
        std::make_shared<UpstreamConnection::Registry>();
    std::size_t opening_ = 0;
    std::list<net::asio::steady_timer*> waiters_;
    std::uint64_t watch_seq_ = 0;
    // Idle-wait handlers hold a weak reference: one that completes after the pool is gone
    // does nothing.
    std::shared_ptr<char> alive_ = std::make_shared<char>();
};

}  // namespace mtls::proxy
