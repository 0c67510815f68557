#include "agent/proxy/plain_stream.hpp"

#include <sys/socket.h>

#include <array>
#include <cerrno>

namespace mtls::proxy {

PlainStream::PlainStream(Socket socket)
    : ByteStream(socket.get_executor()), socket_(std::move(socket)) {}

net::awaitable<std::size_t> PlainStream::read_some(net::asio::mutable_buffer b,
                                                   net::error_code& ec) {
    begin_wait();
    std::size_t n = co_await socket_.async_read_some(b, net::use_ec(ec));
    end_wait(ec);
    co_return n;
}

std::size_t PlainStream::try_write(std::span<const net::asio::const_buffer> bufs,
                                   net::error_code& ec) {
    std::array<iovec, 8> iov{};
    std::size_t count = 0;
    for (const auto& b : bufs) {
        if (count == iov.size()) break;
        iov[count].iov_base = const_cast<void*>(b.data());
        iov[count].iov_len = b.size();
        ++count;
    }
    msghdr msg{};
    msg.msg_iov = iov.data();
    msg.msg_iovlen = count;
    ssize_t sent = ::sendmsg(socket_.native_handle(), &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (sent >= 0) {
        ec = {};
        return static_cast<std::size_t>(sent);
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        ec = net::asio::error::would_block;
    else
        ec = {errno, boost::system::system_category()};
    return 0;
}

net::awaitable<std::size_t> PlainStream::write_some(std::span<const net::asio::const_buffer> bufs,
                                                    net::error_code& ec) {
    // The socket takes it now, most often: one non-blocking sendmsg, without an asynchronous
    // operation (whose completion would take another trip through the scheduler even when
    // the send succeeds at once); wait only when the socket's buffer is full.
    std::size_t sent = try_write(bufs, ec);
    if (ec != net::asio::error::would_block) co_return sent;
    begin_wait();
    std::size_t n = co_await socket_.async_write_some(bufs, net::use_ec(ec));  // sendmsg
    end_wait(ec);
    co_return n;
}

std::size_t PlainStream::try_read(net::asio::mutable_buffer b, net::error_code& ec) {
    // One non-blocking recv (MSG_DONTWAIT: the socket itself stays as Asio set it).
    ssize_t n = ::recv(socket_.native_handle(), b.data(), b.size(), MSG_DONTWAIT);
    if (n > 0) return static_cast<std::size_t>(n);
    if (n == 0)
        ec = net::asio::error::eof;
    else
        ec = {errno == EAGAIN ? EWOULDBLOCK : errno, boost::system::system_category()};
    return 0;
}

void PlainStream::cancel() {
    net::error_code ec;
    socket_.cancel(ec);
}

void PlainStream::shutdown_and_close() {
    net::error_code ec;
    socket_.shutdown(net::asio::socket_base::shutdown_send, ec);
    socket_.close(ec);
}

}  // namespace mtls::proxy
