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
    void cancel() override;
    // Waits until the socket is readable (data or EOF) without reading: no buffer is needed
    // while a keep-alive connection waits for its next request.
    net::awaitable<void> wait_readable(net::error_code& ec);

    // Sends FIN after the last response, then closes.
    void shutdown_and_close();

  private:
    Socket socket_;
};

}  // namespace mtls::proxy
