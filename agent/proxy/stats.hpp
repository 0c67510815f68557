// Counters the admin part reads (status, metrics). Plain atomics; the proxy's threads (its
// workers and the accepting thread) write, anyone reads: one ProxyStats and one RouteStats
// per route serve every worker, so the figures are already the sums over the workers. The per-route
// counters live as long as their route: a reload keeps those of the routes that stay (by name),
// adds new ones and drops the removed ones (routes()).
#pragma once

#include "agent/metrics/prometheus.hpp"

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace mtls::proxy {

// What made a request fail, for route health (daemon/health.hpp: degraded after
// kRouteFailuresForDegraded in a row). Any other answer of the partner is a success.
enum class RouteFailure : std::uint8_t {
    none = 0,
    upstream_connect,       // proxy-made 502: no connection to the partner
    upstream_tls,           // proxy-made 502: the TLS handshake failed (alert, verification)
    upstream_reset,         // proxy-made 502, or the partner broke off its response
    upstream_bad_response,  // proxy-made 502: not HTTP, or not forwardable
    upstream_timeout,       // proxy-made 504
    token_unavailable,      // proxy-made 503: no access token for the route's profile
    partner_invalid_token,  // the partner answered 401 with error="invalid_token"
    upstream_revocation,    // proxy-made 502: the partner's chain is revoked (or no status,
                            // hard-fail)
};

// The stable name of a failure (the proxy's error code, or partner_invalid_token).
constexpr std::string_view to_string(RouteFailure f) {
    switch (f) {
        case RouteFailure::none:
            return "";
        case RouteFailure::upstream_connect:
            return "upstream_connect";
        case RouteFailure::upstream_tls:
            return "upstream_tls";
        case RouteFailure::upstream_reset:
            return "upstream_reset";
        case RouteFailure::upstream_bad_response:
            return "upstream_bad_response";
        case RouteFailure::upstream_timeout:
            return "upstream_timeout";
        case RouteFailure::token_unavailable:
            return "token_unavailable";
        case RouteFailure::partner_invalid_token:
            return "partner_invalid_token";
        case RouteFailure::upstream_revocation:
            return "upstream_revocation";
    }
    return "";
}

// The failure a proxy error code stands for (none: not a partner or token failure, e.g.
// body_too_large, upstream_busy, no_identity).
inline RouteFailure failure_of_code(std::string_view code) {
    for (auto f :
         {RouteFailure::upstream_connect, RouteFailure::upstream_tls, RouteFailure::upstream_reset,
          RouteFailure::upstream_bad_response, RouteFailure::upstream_timeout,
          RouteFailure::token_unavailable, RouteFailure::upstream_revocation})
        if (code == to_string(f)) return f;
    return RouteFailure::none;
}

// How one routed request ended, for RouteStats::record().
struct RequestEnd {
    enum class Answer : std::uint8_t {
        partner,  // the partner's response head was forwarded (status = its status)
        proxy,    // the proxy answered itself (an error: status = the error's)
        none,     // the app went away before any answer
    } answer = Answer::none;
    unsigned status = 0;
    RouteFailure failure = RouteFailure::none;
    bool broken = false;  // the partner broke off its response after the head was forwarded
    double seconds = 0;   // from the request's first byte to its end
};

struct RouteStats {
    explicit RouteStats(std::string route_name) : name(std::move(route_name)) {}
    const std::string name;
    // requests = status_2xx..5xx (responses the partner gave) + proxy_errors + no_response.
    std::atomic<std::uint64_t> requests{0};
    std::atomic<std::uint64_t> status_2xx{0}, status_3xx{0}, status_4xx{0}, status_5xx{0};
    std::atomic<std::uint64_t> proxy_errors{0};  // answered by the proxy itself (no_identity, …)
    std::atomic<std::uint64_t> no_response{0};   // the app went away before any answer
    std::atomic<std::uint64_t> broken_responses{0};  // partner responses cut off mid-body
    // Route health: failures in a row (any success resets), the last one and when.
    std::atomic<std::uint32_t> consecutive_failures{0};
    std::atomic<RouteFailure> last_failure{RouteFailure::none};
    std::atomic<std::int64_t> last_failure_unix_ms{0};
    std::atomic<unsigned> last_failure_status{0};
    metrics::RequestHistogram duration;       // seconds, every routed request
    std::atomic<std::uint64_t> bytes_in{0};   // request body bytes from apps
    std::atomic<std::uint64_t> bytes_out{0};  // response body bytes to apps
    std::atomic<std::uint64_t> handshakes_full{0};
    std::atomic<std::uint64_t> handshakes_resumed{0};
    std::atomic<std::uint64_t> retries{0};
    std::atomic<std::uint64_t> pool_idle{0};  // gauges
    std::atomic<std::uint64_t> pool_busy{0};

    // Called once per routed request when it ends (on its worker's thread): atomics only.
    void record(const RequestEnd& end) {
        ++requests;
        duration.observe(end.seconds);
        switch (end.answer) {
            case RequestEnd::Answer::partner:
                count_status(end.status);
                break;
            case RequestEnd::Answer::proxy:
                ++proxy_errors;
                break;
            case RequestEnd::Answer::none:
                ++no_response;
                break;
        }
        if (end.broken) ++broken_responses;
        if (end.failure != RouteFailure::none) {
            consecutive_failures.fetch_add(1, std::memory_order_relaxed);
            last_failure.store(end.failure, std::memory_order_relaxed);
            last_failure_status.store(end.status, std::memory_order_relaxed);
            last_failure_unix_ms.store(std::chrono::duration_cast<std::chrono::milliseconds>(
                                           std::chrono::system_clock::now().time_since_epoch())
                                           .count(),
                                       std::memory_order_relaxed);
        } else if (end.answer == RequestEnd::Answer::partner &&
                   consecutive_failures.load(std::memory_order_relaxed) != 0) {
            consecutive_failures.store(0, std::memory_order_relaxed);
        }
    }

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

// The routes' counters at one moment, in route order: an immutable snapshot that stays valid
// while the route table changes under it (`for (const auto& r : stats.routes())`).
class RouteStatsList {
  public:
    using Items = std::vector<std::shared_ptr<RouteStats>>;
    class iterator {
      public:
        using iterator_category = std::forward_iterator_tag;
        using value_type = RouteStats;
        using difference_type = std::ptrdiff_t;
        using pointer = const RouteStats*;
        using reference = const RouteStats&;
        iterator() = default;
        explicit iterator(Items::const_iterator it) : it_(it) {}
        reference operator*() const { return **it_; }
        pointer operator->() const { return it_->get(); }
        iterator& operator++() {
            ++it_;
            return *this;
        }
        iterator operator++(int) {
            auto old = *this;
            ++it_;
            return old;
        }
        bool operator==(const iterator&) const = default;

      private:
        Items::const_iterator it_;
    };

    RouteStatsList() : items_(std::make_shared<const Items>()) {}
    explicit RouteStatsList(std::shared_ptr<const Items> items) : items_(std::move(items)) {}
    iterator begin() const { return iterator(items_->begin()); }
    iterator end() const { return iterator(items_->end()); }
    std::size_t size() const { return items_->size(); }
    bool empty() const { return items_->empty(); }
    const RouteStats& operator[](std::size_t i) const { return *(*items_)[i]; }

  private:
    std::shared_ptr<const Items> items_;
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
    // App connections waiting for their next request, and the bytes of per-request buffers
    // (the read buffer, the head being written) they still hold: 0 — buffers exist only
    // while a request is in flight, so an idle keep-alive connection stays small.
    std::atomic<std::uint64_t> connections_idle{0};
    std::atomic<std::uint64_t> idle_buffer_bytes{0};
    // Requests that started with a per-request state (read buffer, parsers) an earlier
    // request gave back, instead of a new one from the heap (session.hpp: RequestStates).
    std::atomic<std::uint64_t> request_states_reused{0};
    // Idle waits whose operation took its memory from blocks an earlier wait gave back
    // (session.hpp: WaitOpBlocks) instead of from the heap.
    std::atomic<std::uint64_t> wait_ops_reused{0};
    // Idle waits that ended with nothing to read (no byte, no EOF): a readiness event Asio
    // took from epoll before the previous request read the bytes it announced (session.cpp,
    // one_request). The connection went back to waiting.
    std::atomic<std::uint64_t> idle_wakeups_empty{0};

    // The proxy's event-loop threads (listener.workers) and, per worker, the app connections
    // handed to it (accepted) and open on it now: each connection lives on one worker.
    static constexpr std::size_t kMaxWorkers = 64;
    std::atomic<std::size_t> workers{1};
    std::array<std::atomic<std::uint64_t>, kMaxWorkers> worker_accepted{};
    std::array<std::atomic<std::uint64_t>, kMaxWorkers> worker_open{};

    // The current routes' counters (any thread). Requests count through their route's own
    // RouteStats; this list is only what status and metrics read.
    RouteStatsList routes() const {
        std::lock_guard lk(routes_mu_);
        return RouteStatsList(routes_);
    }
    // Publishes the route table's counters (the proxy, at start and on reload).
    void publish_routes(RouteStatsList::Items items) {
        auto next = std::make_shared<const RouteStatsList::Items>(std::move(items));
        std::lock_guard lk(routes_mu_);
        routes_ = std::move(next);
    }

  private:
    mutable std::mutex routes_mu_;
    std::shared_ptr<const RouteStatsList::Items> routes_ =
        std::make_shared<const RouteStatsList::Items>();
};

}  // namespace mtls::proxy
