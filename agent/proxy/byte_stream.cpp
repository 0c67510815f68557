#include "agent/proxy/byte_stream.hpp"

#include <stdexcept>

namespace mtls::proxy {
WriteQueue::WriteQueue(std::span<const net::asio::const_buffer> bufs) {
    for (const auto& b : bufs) {
        if (b.size() == 0) continue;
        if (count_ == bufs_.size())
            throw std::logic_error("ByteStream::write_all: too many buffers");
        bufs_[count_++] = b;
    }
}

void WriteQueue::consume(std::size_t n) {
    while (n > 0 && first_ < count_) {
        if (n >= bufs_[first_].size()) {
            n -= bufs_[first_].size();
            ++first_;
        } else {
            bufs_[first_] += n;
            n = 0;
        }
    }
}

ByteStream::ByteStream(const net::asio::any_io_executor& ex)
    : timer_(ex), alive_(std::make_shared<bool>(true)) {}

ByteStream::~ByteStream() {
    *alive_ = false;  // a timer completion still queued must not touch this stream
}

net::awaitable<void> ByteStream::write_all(std::span<const net::asio::const_buffer> bufs,
                                           net::error_code& ec) {
    ec = {};
    WriteQueue q(bufs);
    while (!q.empty()) {
        std::size_t n = co_await write_some(q.rest(), ec);
        if (ec) co_return;
        q.consume(n);
    }
}

void ByteStream::begin_wait() {
    ++waiting_;
    if (deadline_ != Clock::time_point::max() && (!armed_ || deadline_ < armed_at_)) arm(deadline_);
}

void ByteStream::end_wait(net::error_code& ec) {
    --waiting_;
    if (ec == net::asio::error::operation_aborted && fired_) ec = net::beast::error::timeout;
    if (waiting_ == 0) fired_ = false;
}

void ByteStream::arm(Clock::time_point at) {
    armed_ = true;
    armed_at_ = at;
    const std::uint64_t gen = ++arm_gen_;
    timer_.expires_at(at);
    timer_.async_wait([this, alive = alive_, gen](const net::error_code& ec) {
        if (!*alive || ec || gen != arm_gen_) return;  // stream gone, or re-armed since
        on_timer();
    });
}

void ByteStream::on_timer() {
    armed_ = false;
    if (waiting_ == 0 || deadline_ == Clock::time_point::max()) return;  // begin_wait() re-arms
    if (Clock::now() < deadline_) {
        arm(deadline_);  // the deadline moved later since the timer was set
        return;
    }
    fired_ = true;
    cancel();
}

}  // namespace mtls::proxy
