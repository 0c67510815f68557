// HTTP/1.1 messages over a ByteStream: Beast's parser does all the parsing (fed with
// basic_parser::put); this moves the bytes and writes message heads. Used by the session
// for both sides: the app's requests and the partner's responses.
#pragma once

#include "agent/proxy/byte_stream.hpp"

#include <string>

namespace mtls::proxy {

// Reads until `p` has the whole message head; bytes past it stay in `b`. Errors: the
// stream's (timeout, reset, …), the parser's (header_limit, bad_field, …), partial_message
// when the peer closed inside the head, end_of_stream when it closed before any byte.
template <bool isRequest>
net::awaitable<void> read_head(ByteStream& s, net::beast::flat_buffer& b,
                               net::http::basic_parser<isRequest>& p, net::error_code& ec);

// Reads body bytes into the parser's window (body().data / body().size, set by the caller)
// until the window is full, the body is complete, or some bytes arrived and no more are
// ready right now — so a streamed body is forwarded as it comes and a fast one in large
// pieces. The bytes delivered = window size before - body().size after.
template <bool isRequest>
net::awaitable<void> read_body(ByteStream& s, net::beast::flat_buffer& b,
                               net::http::parser<isRequest, net::http::buffer_body>& p,
                               net::error_code& ec);

// The head as it goes on the wire: start line, fields in order, empty line.
void append_head(std::string& out, const net::http::request_header<>& h);
void append_head(std::string& out, const net::http::response_header<>& h);

// Chunked framing (RFC 9112 7.1): "<hex size>\r\n" before the data, "\r\n" after it, and
// the last chunk (no trailers) at the end.
void append_chunk_size(std::string& out, std::size_t n);
inline constexpr std::string_view kCrlf = "\r\n";
inline constexpr std::string_view kLastChunk = "0\r\n\r\n";

}  // namespace mtls::proxy
