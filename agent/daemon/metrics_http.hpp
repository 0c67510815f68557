// The optional loopback HTTP endpoint for monitoring ([metrics] listen):
//   GET /metrics  Prometheus text exposition (the same as `mtls-agentctl metrics`)
//   GET /healthz  200 when healthy or degraded, 503 when failing; body: state and reasons
//   GET /readyz   200 when an identity is usable and the proxy's listeners are bound and
//                 accepting, else 503; body: {"ready": bool, "reason": "..."}
//   GET /livez    200 {"alive":true} while the event loop answers (no other check)
// One request per connection, 10 s to send it, 8 KiB of headers at most.
#pragma once

#include "agent/net/asio.hpp"

#include <functional>
#include <memory>
#include <string>

namespace mtls::daemon {

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
    bool started_ = false;
};

}  // namespace mtls::daemon
