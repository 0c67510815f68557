// The app's side of a proxy session: a plain stream socket (TCP on loopback or a Unix
// socket, both as a generic stream socket so the session is compiled once).
#pragma once

#include "agent/proxy/byte_stream.hpp"

#include <type_traits>

namespace mtls::proxy {

class PlainStream final : public ByteStream {
  public:
    using Socket = net::asio::generic::stream_protocol::socket;

    explicit PlainStream(Socket socket);

    Socket& socket() { return socket_; }

    net::awaitable<std::size_t> read_some(net::asio::mutable_buffer b,
                                          net::error_code& ec) override;
    net::awaitable<std::size_t> write_some(std::span<const net::asio::const_buffer> bufs,
                                           net::error_code& ec) override;
    std::size_t try_read(net::asio::mutable_buffer b, net::error_code& ec) override;
    // Sends what the socket takes now (one non-blocking sendmsg, no asynchronous operation):
    // the bytes sent, or 0 with `ec` (would_block when its buffer is full, or the error).
    std::size_t try_write(std::span<const net::asio::const_buffer> bufs, net::error_code& ec);
    void cancel() override;
    // Waits until the socket is readable (data or EOF) without reading, then calls
    // `h(error_code)`: no buffer is needed while a keep-alive connection waits for its next
    // request, and no coroutine (session.cpp: an idle connection is a small object and this
    // wait). The deadline applies as to any wait.
    // The wait's operation is allocated with h's associated allocator (session.cpp: a
    // per-worker block pool).
    template <class Handler>
    void async_wait_readable(Handler&& h) {
        begin_wait();
        socket_.async_wait(Socket::wait_read,
                           ReadableWait<std::decay_t<Handler>>{this, std::forward<Handler>(h)});
    }

    // Sends FIN after the last response, then closes.
    void shutdown_and_close();

  private:
    // async_wait_readable's completion: ends the wait, then calls the handler; it passes the
    // handler's associated allocator on to Asio.
    template <class Handler>
    struct ReadableWait {
        PlainStream* stream;
        Handler h;
        using allocator_type = net::asio::associated_allocator_t<Handler>;
        allocator_type get_allocator() const noexcept {
            return net::asio::get_associated_allocator(h);
        }
        void operator()(const net::error_code& e) {
            net::error_code ec = e;
            stream->end_wait(ec);
            h(ec);
        }
    };

    Socket socket_;
};

}  // namespace mtls::proxy
