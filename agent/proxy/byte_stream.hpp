// A byte stream as the proxy's data path uses it: the app's connection (plain_stream.hpp)
// and the partner's TLS connection (tls_stream.hpp) alike, with coroutine reads and
// writes on Asio's reactor (speculative: a read that finds data ready completes without
// waiting, and one that drained the socket waits for the next readiness event instead of
// trying again).
//
// Deadlines: one per stream, set before an operation (set_deadline). A single timer per
// stream enforces it lazily: moving the deadline later — what every keep-alive read does —
// costs a store, not a timer re-arm. When the deadline passes while an operation waits,
// the wait is cancelled and the operation fails with beast::error::timeout.
#pragma once

#include "agent/net/asio.hpp"

#include <array>
#include <chrono>
#include <cstddef>
#include <memory>
#include <span>

namespace mtls::proxy {

// Up to 6 buffers to write, with the bytes already written taken off the front: write_all's
// bookkeeping, shared with callers that try a write without waiting first.
class WriteQueue {
  public:
    static constexpr std::size_t kMax = 6;
    WriteQueue() = default;  // empty
    // Empty buffers are skipped; more than kMax others throw std::logic_error.
    explicit WriteQueue(std::span<const net::asio::const_buffer> bufs);
    // `n` bytes went out.
    void consume(std::size_t n);
    bool empty() const { return first_ == count_; }
    std::span<const net::asio::const_buffer> rest() const {
        return {bufs_.data() + first_, count_ - first_};
    }

  private:
    std::array<net::asio::const_buffer, kMax> bufs_;
    std::size_t count_ = 0;
    std::size_t first_ = 0;
};

class ByteStream {
  public:
    using Clock = std::chrono::steady_clock;

    explicit ByteStream(const net::asio::any_io_executor& ex);
    virtual ~ByteStream();
    ByteStream(const ByteStream&) = delete;
    ByteStream& operator=(const ByteStream&) = delete;

    // Reads at least one byte, waiting as needed. asio::error::eof: the peer closed.
    virtual net::awaitable<std::size_t> read_some(net::asio::mutable_buffer b,
                                                  net::error_code& ec) = 0;
    // Writes some bytes from the front of `bufs`, waiting as needed.
    virtual net::awaitable<std::size_t> write_some(std::span<const net::asio::const_buffer> bufs,
                                                   net::error_code& ec) = 0;
    // Reads what is ready without waiting: bytes read, or 0 with `ec` (would_block when
    // nothing is ready, eof, or the error).
    virtual std::size_t try_read(net::asio::mutable_buffer b, net::error_code& ec) = 0;
    // Cancels waiting operations (they fail with operation_aborted).
    virtual void cancel() = 0;

    // Writes all of `bufs` (at most 6 buffers), waiting as needed.
    net::awaitable<void> write_all(std::span<const net::asio::const_buffer> bufs,
                                   net::error_code& ec);

    void set_deadline(Clock::time_point at) { deadline_ = at; }
    void expires_after(std::chrono::milliseconds d) { deadline_ = Clock::now() + d; }
    void expires_never() { deadline_ = Clock::time_point::max(); }

  protected:
    // Bracket an operation that may wait: while it waits, the deadline applies; end_wait
    // turns the cancellation by a passed deadline into beast::error::timeout.
    void begin_wait();
    void end_wait(net::error_code& ec);

  private:
    void arm(Clock::time_point at);
    void on_timer();

    net::asio::steady_timer timer_;
    std::shared_ptr<bool> alive_;  // the timer handler's check that the stream still exists
    Clock::time_point deadline_ = Clock::time_point::max();
    Clock::time_point armed_at_ = Clock::time_point::max();
    bool armed_ = false;
    bool fired_ = false;
    unsigned waiting_ = 0;       // operations waiting now (an upload and a response read)
    std::uint64_t arm_gen_ = 0;  // tells a stale timer completion from the current one
};

}  // namespace mtls::proxy
