// The app's side of a proxy session: a plain stream socket (TCP on loopback or a Unix
// socket, both as a generic stream socket so the session is compiled once).
#pragma once

#include "agent/proxy/byte_stream.hpp"

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
    template <class Handler>
    void async_wait_readable(Handler&& h) {
        begin_wait();
        socket_.async_wait(Socket::wait_read,
                           [this, h = std::forward<Handler>(h)](const net::error_code& e) mutable {
                               net::error_code ec = e;
                               end_wait(ec);
                               h(ec);
                           });
    }

    // Sends FIN after the last response, then closes.
    void shutdown_and_close();

  private:
    Socket socket_;
};

}  // namespace mtls::proxy
