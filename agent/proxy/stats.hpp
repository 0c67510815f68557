// Counters the admin part reads (status, metrics). Plain atomics; the proxy thread writes,
// anyone reads.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <string>

namespace mtls::proxy {

struct RouteStats {
    explicit RouteStats(std::string route_name) : name(std::move(route_name)) {}
    const std::string name;
    std::atomic<std::uint64_t> requests{0};
    std::atomic<std::uint64_t> status_2xx{0}, status_3xx{0}, status_4xx{0}, status_5xx{0};
    std::atomic<std::uint64_t> proxy_errors{0};  // answered by the proxy itself (no_identity, …)
    std::atomic<std::uint64_t> bytes_in{0};      // request body bytes from apps
    std::atomic<std::uint64_t> bytes_out{0};     // response body bytes to apps
    std::atomic<std::uint64_t> handshakes_full{0};
    std::atomic<std::uint64_t> handshakes_resumed{0};
    std::atomic<std::uint64_t> retries{0};
    std::atomic<std::uint64_t> pool_idle{0};  // gauges
    std::atomic<std::uint64_t> pool_busy{0};

    void count_status(unsigned status) {
        if (status >= 500)
            ++status_5xx;
        else if (status >= 400)
            ++status_4xx;
        else if (status >= 300)
            ++status_3xx;
        else
            ++status_2xx;
    }
};

struct ProxyStats {
    std::atomic<std::uint64_t> connections_accepted{0};
    std::atomic<std::uint64_t> connections_open{0};
    // App connections refused at once (503 too_many_connections, then closed): over
    // listener.max_connections, over listener.max_connections_per_caller, or shed while the
    // process was out of file descriptors.
    std::atomic<std::uint64_t> refused_total{0};
    std::atomic<std::uint64_t> refused_per_caller{0};
    std::atomic<std::uint64_t> refused_no_fds{0};
    std::atomic<std::uint64_t> unrouted_requests{0};  // 400/404/405/431 before a route was known
    std::deque<RouteStats> routes;                    // index = route index; fixed at start
};

}  // namespace mtls::proxy
