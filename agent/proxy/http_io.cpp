#include "agent/proxy/http_io.hpp"

#include <algorithm>
#include <charconv>

namespace mtls::proxy {
namespace http = net::http;
namespace {

// Room to read into: at least `want`, at most what the buffer's limit leaves.
std::size_t read_room(const net::beast::flat_buffer& b, std::size_t want) {
    const std::size_t left = b.max_size() - b.size();
    return std::min(left, std::max(want, b.capacity() - b.size()));
}

// The peer closed: the parser decides whether that ends the message (a body that runs to
// the close) or cuts it short.
template <bool isRequest>
void on_eof(http::basic_parser<isRequest>& p, net::error_code& ec) {
    if (p.got_some()) {
        ec = {};
        p.put_eof(ec);
    } else {
        ec = http::error::end_of_stream;
    }
}

}  // namespace

template <bool isRequest>
net::awaitable<void> read_head(ByteStream& s, net::beast::flat_buffer& b,
                               http::basic_parser<isRequest>& p, net::error_code& ec) {
    ec = {};
    for (;;) {
        if (b.size() > 0) {
            std::size_t used = p.put(b.data(), ec);
            b.consume(used);
            if (!ec && p.is_header_done()) co_return;
            if (ec && ec != http::error::need_more) co_return;
            ec = {};
            if (used > 0) continue;
        }
        std::size_t room = read_room(b, 4096);
        if (room == 0) {
            ec = http::error::buffer_overflow;
            co_return;
        }
        std::size_t n = co_await s.read_some(b.prepare(room), ec);
        if (ec == net::asio::error::eof) {
            on_eof(p, ec);
            co_return;
        }
        if (ec) co_return;
        b.commit(n);
    }
}

template <bool isRequest>
net::awaitable<void> read_body(ByteStream& s, net::beast::flat_buffer& b,
                               http::parser<isRequest, http::buffer_body>& p, net::error_code& ec) {
    ec = {};
    p.eager(true);
    auto& body = p.get().body();
    const std::size_t window = body.size;
    for (;;) {
        if (p.is_done()) co_return;
        if (b.size() > 0) {
            std::size_t used = p.put(b.data(), ec);
            b.consume(used);
            if (ec == http::error::need_buffer) {  // the window is full
                ec = {};
                co_return;
            }
            if (ec == http::error::need_more) ec = {};
            if (ec || p.is_done() || body.size == 0) co_return;
            if (used > 0 && b.size() > 0) continue;
        }
        std::size_t room = read_room(b, 16 * 1024);
        if (room == 0) {
            ec = http::error::buffer_overflow;
            co_return;
        }
        auto space = b.prepare(room);
        std::size_t n = 0;
        if (body.size != window) {
            // Some of the body is here: take more only if it is ready, else hand it on.
            n = s.try_read(space, ec);
            if (ec) {
                // would_block: forward what we have. Other errors show on the next call,
                // after the bytes already read have been forwarded.
                ec = {};
                co_return;
            }
        } else {
            n = co_await s.read_some(space, ec);
            if (ec == net::asio::error::eof) {
                on_eof(p, ec);
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
                                              net::error_code&);
template net::awaitable<void> read_body<false>(ByteStream&, net::beast::flat_buffer&,
                                               http::parser<false, http::buffer_body>&,
                                               net::error_code&);

namespace {
template <class Fields>
void append_fields(std::string& out, const Fields& fields) {
    for (const auto& f : fields) {
        out += f.name_string();
        out += ": ";
        out += f.value();
        out += kCrlf;
    }
    out += kCrlf;
}
}  // namespace

void append_head(std::string& out, const http::request_header<>& h) {
    out += h.method_string();
    out += ' ';
    out += h.target();
    out += h.version() == 10 ? " HTTP/1.0\r\n" : " HTTP/1.1\r\n";
    append_fields(out, h);
}

void append_head(std::string& out, const http::response_header<>& h) {
    out += h.version() == 10 ? "HTTP/1.0 " : "HTTP/1.1 ";
    char code[8];
    auto [end, err] = std::to_chars(code, code + sizeof code, h.result_int());
    (void)err;
    out.append(code, end);
    out += ' ';
    out += h.reason();
    out += kCrlf;
    append_fields(out, h);
}

void append_chunk_size(std::string& out, std::size_t n) {
    char hex[20];
    auto [end, err] = std::to_chars(hex, hex + sizeof hex, n, 16);
    (void)err;
    out.append(hex, end);
    out += kCrlf;
}

}  // namespace mtls::proxy
