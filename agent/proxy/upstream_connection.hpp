// One TLS connection to a partner: TCP connect + handshake with timeouts, the read buffer
// that outlives single responses, and the facts the pool and the access log need.
#pragma once

#include "agent/proxy/errors.hpp"
#include "agent/proxy/tls_client_context.hpp"
#include "agent/proxy/tls_stream.hpp"

#include <algorithm>
#include <chrono>
#include <memory>
#include <utility>
#include <vector>

namespace mtls::proxy {

class UpstreamConnection {
  public:
    using Clock = std::chrono::steady_clock;

    UpstreamConnection(const net::asio::any_io_executor& ex, std::shared_ptr<TlsClientContext> tls);
    ~UpstreamConnection();
    UpstreamConnection(const UpstreamConnection&) = delete;
    UpstreamConnection& operator=(const UpstreamConnection&) = delete;

    // The pool's set of leased connections (UpstreamPool::cut_generation()): a connection
    // in it removes itself when it is destroyed, however its lease ended. A vector, not a
    // set: no allocation per lease once it has held as many as the pool leases at once (a
    // few dozen at most, so the search on removal is short).
    using Registry = std::vector<UpstreamConnection*>;
    void enlist(const std::shared_ptr<Registry>& r) {
        registry_ = r;
        r->push_back(this);
    }
    void delist() {
        if (auto r = registry_.lock()) {
            if (auto it = std::find(r->begin(), r->end(), this); it != r->end()) {
                *it = r->back();
                r->pop_back();
            }
        }
        registry_.reset();
    }

    // Connect (to the first of `endpoints` that answers: the target's resolved addresses),
    // handshake. On failure returns the error to answer (502/504).
    net::awaitable<ProxyError> open(const net::tcp::resolver::results_type& endpoints,
                                    const UpstreamTarget& target,
                                    const config::Route::Timeouts& timeouts);

    TlsStream& stream() { return stream_; }
    net::beast::flat_buffer& buffer() { return buffer_; }

    std::uint64_t generation() const {
        return tls_->identity() ? tls_->identity()->generation() : 0;
    }
    bool resumed() const { return resumed_; }
    // The partner's chain is now known to be revoked (cached answers only, no I/O).
    bool revoked_now() const;
    std::uint64_t requests() const { return requests_; }
    void count_request() { ++requests_; }

    Clock::time_point idle_since() const { return idle_since_; }
    void mark_idle() { idle_since_ = Clock::now(); }

    // What the partner sent after the last complete response, read without waiting (the
    // bytes already here, then one non-blocking recv). TLS-only records (session tickets,
    // KeyUpdate) are consumed: nothing. Application data — a second, unsolicited response,
    // a body after a HEAD answer — is `data`; EOF, close_notify or an error is `closed`;
    // `partial`: part of a TLS record is here and the rest is not. Only `nothing` leaves a
    // connection fit for another exchange (RFC 9112 §6.3: a client must not process or forward such
    // data as a separate response).
    // `ask_socket` false: only what is already in user space (read with the response) is
    // looked at, no system call — what arrives later is for the idle wait and the check
    // before reuse, which asks the socket.
    enum class Leftover { nothing, data, closed, partial };
    Leftover take_leftover(bool ask_socket = true);

    // While pooled: `handler(ec)` runs when the socket becomes readable (or the wait is
    // cancelled: operation_aborted). No bytes are read by the wait itself.
    template <class Handler>
    void watch(std::uint64_t id, Handler&& handler) {
        watch_id_ = id;
        stream_.socket().async_wait(net::tcp::socket::wait_read, std::forward<Handler>(handler));
    }
    // Ends the pending idle wait, if any (its handler then sees operation_aborted, or no
    // longer finds this wait's id).
    void unwatch() {
        if (watch_id_ == 0) return;
        watch_id_ = 0;
        stream_.cancel();
    }
    // The idle wait fired: none is pending now.
    void watch_fired() { watch_id_ = 0; }
    bool watched() const { return watch_id_ != 0; }
    std::uint64_t watch_id() const { return watch_id_; }
    void close();

  private:
    std::shared_ptr<TlsClientContext> tls_;  // keeps the identity (key, cert) alive
    std::weak_ptr<Registry> registry_;
    TlsStream stream_;
    net::beast::flat_buffer buffer_;
    bool resumed_ = false;
    std::uint64_t requests_ = 0;
    std::uint64_t watch_id_ = 0;  // of the pending idle wait (the pool's numbering; 0: none)
    std::vector<std::shared_ptr<X509>> peer_chain_;  // verified, leaf first (revocation on)
    Clock::time_point idle_since_ = Clock::now();
};

}  // namespace mtls::proxy
