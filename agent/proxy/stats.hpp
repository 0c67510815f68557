// Counters the admin part reads (status, metrics). Plain atomics; the proxy thread writes,
// anyone reads. The per-route counters live as long as their route: a reload keeps those of
// the routes that stay (by name), adds new ones and drops the removed ones (routes()).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

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
