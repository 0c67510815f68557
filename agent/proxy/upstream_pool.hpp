// The upstream connections of one route: idle ones are reused (newest first), dead or
// expired ones dropped, at most route.pool_max open at once (callers wait for a slot up to
// the connect timeout). Connections belong to the identity they were opened with: after a
// rotation the pool builds a new TLS context and never hands out an old-identity
// connection again; old ones finish their request and are closed when released.
// Single-threaded: used from the proxy's io_context thread only.
#pragma once

#include "agent/identity/identity.hpp"
#include "agent/proxy/errors.hpp"
#include "agent/proxy/router.hpp"
#include "agent/proxy/stats.hpp"
#include "agent/proxy/upstream_connection.hpp"

#include <list>
#include <memory>
#include <vector>

namespace mtls::proxy {

class UpstreamPool {
  public:
    UpstreamPool(net::asio::any_io_executor ex, const RouteTable::Entry& entry, RouteStats& stats);
    ~UpstreamPool();

    struct Lease {
        std::unique_ptr<UpstreamConnection> conn;
        bool reused = false;
    };
    // A connection for `id`: an idle one or a new one. On failure conn is null and `err` set.
    // retryable: the request can be sent again on a new connection if this one turns out
    // dead before any byte of the response (idempotent, replayable body); then idle
    // connections are not probed with a system call first.
    net::awaitable<Lease> acquire(identity::IdentityPtr id, ProxyError& err,
                                  bool retryable = false);

    // Gives a connection back. reusable: the exchange ended cleanly and both sides keep
    // the connection alive.
    void release(std::unique_ptr<UpstreamConnection> conn, bool reusable);

    // Closes idle connections past the idle timeout or of an old identity.
    void sweep();
    void close_all();

    std::size_t idle() const { return idle_.size(); }
    std::size_t busy() const { return busy_; }

  private:
    std::shared_ptr<TlsClientContext> context_for(const identity::IdentityPtr& id, ProxyError& err);
    void update_gauges();
    void wake_one();

    net::asio::any_io_executor ex_;
    const RouteTable::Entry& entry_;
    RouteStats& stats_;
    std::shared_ptr<TlsClientContext> tls_;                  // for the current identity
    std::vector<std::unique_ptr<UpstreamConnection>> idle_;  // back = most recently used
    std::size_t busy_ = 0;
    std::size_t opening_ = 0;
    std::list<net::asio::steady_timer*> waiters_;
};

}  // namespace mtls::proxy
