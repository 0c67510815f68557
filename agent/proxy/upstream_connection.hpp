// One TLS connection to a partner: TCP connect + handshake with timeouts, the read buffer
// that outlives single responses, and the facts the pool and the access log need.
#pragma once

#include "agent/proxy/errors.hpp"
#include "agent/proxy/tls_client_context.hpp"
#include "agent/proxy/tls_stream.hpp"

#include <chrono>
#include <memory>

namespace mtls::proxy {

class UpstreamConnection {
  public:
    using Clock = std::chrono::steady_clock;

    UpstreamConnection(const net::asio::any_io_executor& ex, std::shared_ptr<TlsClientContext> tls);

    // Resolve, connect, handshake. On failure returns the error to answer (502/504).
    net::awaitable<ProxyError> open(const UpstreamTarget& target,
                                    const config::Route::Timeouts& timeouts);

    TlsStream& stream() { return stream_; }
    net::beast::flat_buffer& buffer() { return buffer_; }

    std::uint64_t generation() const {
        return tls_->identity() ? tls_->identity()->generation() : 0;
    }
    bool resumed() const { return resumed_; }
    std::uint64_t requests() const { return requests_; }
    void count_request() { ++requests_; }

    Clock::time_point idle_since() const { return idle_since_; }
    void mark_idle() { idle_since_ = Clock::now(); }

    // Whether the peer closed (or sent something unasked) while we were idle. `probe`: also
    // ask the socket (a non-blocking peek, one system call); without it only bytes already
    // received are checked — enough when a failed request may be retried anyway.
    bool looks_closed(bool probe = true);
    void close();

  private:
    std::shared_ptr<TlsClientContext> tls_;  // keeps the identity (key, cert) alive
    TlsStream stream_;
    net::beast::flat_buffer buffer_;
    bool resumed_ = false;
    std::uint64_t requests_ = 0;
    Clock::time_point idle_since_ = Clock::now();
};

}  // namespace mtls::proxy
