// The addresses of one route's partner host, resolved once and reused for new connections
// for the route's timeouts.dns_ttl (getaddrinfo tells no TTL, so the TTL is configured),
// instead of a resolution per connection. Forgotten when a connection to them failed, so
// the next one resolves again (the host may have moved). One per route, shared by the
// route's pools on every proxy worker (RouteUpstream in upstream_pool.hpp): the cache is
// under a mutex (never held across the resolution itself; two workers that miss at once
// may both resolve).
#pragma once

#include "agent/net/asio.hpp"
#include "agent/proxy/router.hpp"

#include <atomic>
#include <chrono>
#include <mutex>
#include <optional>

namespace mtls::proxy {

class UpstreamResolver {
  public:
    using Clock = std::chrono::steady_clock;
    using Results = net::tcp::resolver::results_type;

    UpstreamResolver(UpstreamTarget target, std::chrono::milliseconds ttl)
        : target_(std::move(target)), ttl_(ttl) {}

    // The cached addresses while fresh, else a new resolution (cached when ttl > 0).
    net::awaitable<Results> resolve(net::error_code& ec);
    // After a failed connection: the next resolve() asks the resolver again.
    void forget() {
        std::lock_guard lk(mu_);
        cached_.reset();
    }

    std::uint64_t resolutions() const { return resolutions_.load(); }

  private:
    const UpstreamTarget target_;
    const std::chrono::milliseconds ttl_;
    std::mutex mu_;
    std::optional<Results> cached_;  // under mu_
    Clock::time_point expires_{};    // under mu_
    std::atomic<std::uint64_t> resolutions_{0};
};

}  // namespace mtls::proxy
