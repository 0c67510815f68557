// The optional loopback HTTP endpoint for monitoring ([metrics] listen):
//   GET /metrics  Prometheus text exposition (the same as `mtls-agentctl metrics`)
//   GET /healthz  200 when healthy or degraded, 503 when failing; body: state and reasons
//   GET /readyz   200 when an identity is usable and the proxy's listeners are bound and
//                 accepting, else 503; body: {"ready": bool, "reason": "..."}
//   GET /livez    200 {"alive":true} while the event loop answers (no other check)
// One request per connection, 10 s to send it, 8 KiB of headers at most, at most
// kMaxConnections open at once: more are closed as soon as accepted, so that local users
// opening connections here cannot use up the descriptors the proxy and the token need.
//
// Host check (DNS rebinding: a web page the host's user opens re-points its own name to
// 127.0.0.1 and reads the answers): a Host that is not an IP address literal, "localhost",
// this machine's host name or listed in metrics.allowed_hosts ("*": any) gets
// 403 host_not_allowed. A request without Host (HTTP/1.0) passes: browsers always send one.
#pragma once

#include "agent/net/asio.hpp"

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace mtls::daemon {

// The Host check above: true when `host` (a Host header's value, port included) may be
// served. `allowed`: metrics.allowed_hosts.
bool metrics_host_allowed(std::string_view host, const std::vector<std::string>& allowed);

class MetricsHttp {
  public:
    using Text = std::function<std::string()>;
    struct Health {
        bool ok;
        std::string json;
    };
    // Binds; throws std::runtime_error when the address is unusable or cannot be bound.
    MetricsHttp(net::asio::io_context& io, const std::string& listen, Text metrics,
                std::function<Health()> health, std::function<Health()> ready);
    // Starts accepting (once). The object must outlive the connections it serves.
    void start();
    void stop();
    static constexpr std::size_t kMaxConnections = 64;
    // metrics.allowed_hosts (a reload sets it in place).
    void allow_hosts(std::vector<std::string> names) { allowed_hosts_ = std::move(names); }
    net::tcp::endpoint endpoint() const { return acceptor_.local_endpoint(); }

  private:
    net::awaitable<void> accept_loop();
    net::awaitable<void> serve(net::tcp::socket sock);

    net::asio::io_context& io_;
    net::tcp::acceptor acceptor_;
    Text metrics_;
    std::function<Health()> health_;
    std::function<Health()> ready_;
    std::string listen_;
    std::vector<std::string> allowed_hosts_;
    std::size_t open_ = 0;  // connections being served (the io thread only)
    bool started_ = false;
};

}  // namespace mtls::daemon
