#include "agent/proxy/http_feed.hpp"

#include <charconv>
#include <cstring>

namespace mtls::proxy {
namespace http = net::http;

template <bool isRequest>
Feed feed_head(net::beast::flat_buffer& b, http::basic_parser<isRequest>& p, net::error_code& ec) {
    ec = {};
    while (b.size() > 0) {
        std::size_t used = p.put(b.data(), ec);
        b.consume(used);
        if (ec == http::error::need_more) {
            ec = {};
            return Feed::need_more;
        }
        if (ec) return Feed::error;
        if (p.is_header_done()) return Feed::done;
        if (used == 0) return Feed::need_more;
    }
    return Feed::need_more;
}

template <bool isRequest>
Feed feed_body(net::beast::flat_buffer& b, http::parser<isRequest, http::buffer_body>& p,
               net::error_code& ec) {
    ec = {};
    p.eager(true);
    while (!p.is_done()) {
        if (p.get().body().size == 0) return Feed::window_full;
        if (b.size() == 0) return Feed::need_more;
        std::size_t used = p.put(b.data(), ec);
        b.consume(used);
        if (ec == http::error::need_buffer) {
            ec = {};
            return Feed::window_full;
        }
        if (ec == http::error::need_more) {
            ec = {};
            return Feed::need_more;
        }
        if (ec) return Feed::error;
        if (used == 0) return Feed::need_more;
    }
    return Feed::done;
}

template <bool isRequest>
void feed_eof(http::basic_parser<isRequest>& p, net::error_code& ec) {
    if (p.got_some()) {
        ec = {};
        p.put_eof(ec);
    } else {
        ec = http::error::end_of_stream;
    }
}

template Feed feed_head<true>(net::beast::flat_buffer&, http::basic_parser<true>&,
                              net::error_code&);
template Feed feed_head<false>(net::beast::flat_buffer&, http::basic_parser<false>&,
                               net::error_code&);
template Feed feed_body<true>(net::beast::flat_buffer&, http::parser<true, http::buffer_body>&,
                              net::error_code&);
template Feed feed_body<false>(net::beast::flat_buffer&, http::parser<false, http::buffer_body>&,
                               net::error_code&);
template void feed_eof<true>(http::basic_parser<true>&, net::error_code&);
template void feed_eof<false>(http::basic_parser<false>&, net::error_code&);

void append_field(std::string& out, std::string_view name, std::string_view value) {
    // One resize and two copies: four appends would each check the capacity and call memcpy
    // (a field or two per request each way, on every request).
    const std::size_t at = out.size();
    out.resize(at + name.size() + value.size() + 4);
    char* p = out.data() + at;
    std::memcpy(p, name.data(), name.size());
    p += name.size();
    std::memcpy(p, ": ", 2);
    std::memcpy(p + 2, value.data(), value.size());
    std::memcpy(p + 2 + value.size(), "\r\n", 2);
}

void end_head(std::string& out) {
    out.append(std::string_view("\r\n"));
}

void append_start_line(std::string& out, const http::response_header<>& h) {
    const unsigned code = h.result_int() % 1000;  // the parser takes exactly three digits
    char start[] = "HTTP/1.1 000 ";
    if (h.version() == 10) start[7] = '0';
    start[9] = static_cast<char>('0' + code / 100);
    start[10] = static_cast<char>('0' + code / 10 % 10);
    start[11] = static_cast<char>('0' + code % 10);
    out.append(start, sizeof start - 1).append(h.reason()).append(std::string_view("\r\n"));
}

namespace {
template <class Fields>
void append_fields_and_end(std::string& out, const Fields& fields) {
    for (const auto& f : fields) append_field(out, f.name_string(), f.value());
    end_head(out);
}
}  // namespace

void append_head(std::string& out, const http::request_header<>& h) {
    out += h.method_string();
    out += ' ';
    out += h.target();
    out += h.version() == 10 ? " HTTP/1.0\r\n" : " HTTP/1.1\r\n";
    append_fields_and_end(out, h);
}

void append_head(std::string& out, const http::response_header<>& h) {
    append_start_line(out, h);
    append_fields_and_end(out, h);
}

std::array<net::asio::const_buffer, 4> body_piece(std::string& size_line, bool chunked,
                                                  const char* data, std::size_t n, bool last) {
    static constexpr std::string_view crlf = "\r\n", last_chunk = "0\r\n\r\n";
    const bool chunk = chunked && n > 0;
    size_line.clear();
    if (chunk) {
        char hex[20];
        auto [end, err] = std::to_chars(hex, hex + sizeof hex, n, 16);
        (void)err;
        size_line.append(hex, end);
        size_line += crlf;
    }
    return {net::asio::buffer(size_line), net::asio::const_buffer(data, n),
            net::asio::buffer(chunk ? crlf : std::string_view()),
            net::asio::buffer(chunked && last ? last_chunk : std::string_view())};
}

}  // namespace mtls::proxy
