// The pure half of moving HTTP/1.1 messages (no sockets, shared with the fuzz target
// tests/fuzz/fuzz_proxy_stream.cpp): feeding received bytes to Beast's parser, which does
// all the parsing, and writing the heads and chunk framing we send.
#pragma once

#include "agent/net/asio.hpp"

#include <array>
#include <string>
#include <string_view>

namespace mtls::proxy {

enum class Feed {
    need_more,    // the parser needs more bytes than `b` holds
    done,         // the head (feed_head) or the whole message (feed_body) is complete
    window_full,  // feed_body: the body window is full; hand it on, then feed again
    error,        // `ec` says why (header_limit, bad_chunk, …)
};

// Gives the parser what `b` holds until the head is complete; consumed bytes leave `b`.
template <bool isRequest>
Feed feed_head(net::beast::flat_buffer& b, net::http::basic_parser<isRequest>& p,
               net::error_code& ec);

// Gives the parser what `b` holds, body bytes going to the window set by the caller
// (body().data / body().size).
template <bool isRequest>
Feed feed_body(net::beast::flat_buffer& b, net::http::parser<isRequest, net::http::buffer_body>& p,
               net::error_code& ec);

// The peer closed: whether that ends the message (a body that runs to the close) or cuts
// it short (partial_message), or came before any byte (end_of_stream).
template <bool isRequest>
void feed_eof(net::http::basic_parser<isRequest>& p, net::error_code& ec);

// The head as it goes on the wire: start line, fields in order, empty line.
void append_head(std::string& out, const net::http::request_header<>& h);
void append_head(std::string& out, const net::http::response_header<>& h);

// The same in pieces, for heads written with other fields than the parsed ones (framing,
// the token) without copying those into a Beast field list: a response's status line, one
// field line, and the empty line that ends the head.
void append_start_line(std::string& out, const net::http::response_header<>& h);
void append_field(std::string& out, std::string_view name, std::string_view value);
void end_head(std::string& out);

// One piece of a body as it goes on the wire: the n bytes at `data` as they are, or
// chunked (RFC 9112 7.1: "<hex size>\r\n", the data, "\r\n"; an empty piece adds no
// chunk) with the last chunk (no trailers) after it when `last`. `size_line` holds the
// size text and must outlive the returned buffers.
std::array<net::asio::const_buffer, 4> body_piece(std::string& size_line, bool chunked,
                                                  const char* data, std::size_t n, bool last);

}  // namespace mtls::proxy
