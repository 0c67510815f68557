#include "agent/proxy/http_io.hpp"

#include <algorithm>

namespace mtls::proxy {
namespace http = net::http;
namespace {

// Room to read into: at least `want`, at most what the buffer's limit leaves.
std::size_t read_room(const net::beast::flat_buffer& b, std::size_t want) {
    const std::size_t left = b.max_size() - b.size();
    return std::min(left, std::max(want, b.capacity() - b.size()));
}

}  // namespace

template <bool isRequest>
net::awaitable<void> read_head(ByteStream& s, net::beast::flat_buffer& b,
                               http::basic_parser<isRequest>& p, net::error_code& ec) {
    for (;;) {
        Feed f = feed_head(b, p, ec);
        if (f != Feed::need_more) co_return;
        std::size_t room = read_room(b, 4096);
        if (room == 0) {
            ec = http::error::buffer_overflow;
            co_return;
        }
        std::size_t n = co_await s.read_some(b.prepare(room), ec);
        if (ec == net::asio::error::eof) {
            feed_eof(p, ec);
            co_return;
        }
        if (ec) co_return;
        b.commit(n);
    }
}

template <bool isRequest>
net::awaitable<void> read_body(ByteStream& s, net::beast::flat_buffer& b,
                               http::parser<isRequest, http::buffer_body>& p, net::error_code& ec,
                               std::size_t window) {
    auto& body = p.get().body();
    if (window == kWholeWindow) window = body.size;
    for (;;) {
        Feed f = feed_body(b, p, ec);
        if (f != Feed::need_more) co_return;
        std::size_t room = read_room(b, 16 * 1024);
        if (room == 0) {
            ec = http::error::buffer_overflow;
            co_return;
        }
        auto space = b.prepare(room);
        std::size_t n = 0;
        if (body.size != window) {
            // Some of the body is here: take more only if it is ready, else hand it on.
            // (Errors other than would_block show on the next call, after the bytes
            // already read have been forwarded.)
            n = s.try_read(space, ec);
            if (ec) {
                ec = {};
                co_return;
            }
        } else {
            n = co_await s.read_some(space, ec);
            if (ec == net::asio::error::eof) {
                feed_eof(p, ec);
                co_return;
            }
            if (ec) co_return;
        }
        b.commit(n);
    }
}

template net::awaitable<void> read_head<true>(ByteStream&, net::beast::flat_buffer&,
                                              http::basic_parser<true>&, net::error_code&);
template net::awaitable<void> read_head<false>(ByteStream&, net::beast::flat_buffer&,
                                               http::basic_parser<false>&, net::error_code&);
template net::awaitable<void> read_body<true>(ByteStream&, net::beast::flat_buffer&,
                                              http::parser<true, http::buffer_body>&,
                                              net::error_code&, std::size_t);
template net::awaitable<void> read_body<false>(ByteStream&, net::beast::flat_buffer&,
                                               http::parser<false, http::buffer_body>&,
                                               net::error_code&, std::size_t);

}  // namespace mtls::proxy
