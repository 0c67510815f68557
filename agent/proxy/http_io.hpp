// HTTP/1.1 messages over a ByteStream: the reads that feed Beast's parser
// (http_feed.hpp does the feeding; Beast parses), for both sides of a session — the app's
// requests and the partner's responses.
#pragma once

#include "agent/proxy/byte_stream.hpp"
#include "agent/proxy/http_feed.hpp"

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
// pieces. The bytes delivered = window size before - body().size after. `window`: the
// window's size when the caller began filling it, when it fed the parser itself first
// (feed_body; bytes it delivered count as arrived); kWholeWindow: body().size.
inline constexpr std::size_t kWholeWindow = static_cast<std::size_t>(-1);
template <bool isRequest>
net::awaitable<void> read_body(ByteStream& s, net::beast::flat_buffer& b,
                               net::http::parser<isRequest, net::http::buffer_body>& p,
                               net::error_code& ec, std::size_t window = kWholeWindow);

}  // namespace mtls::proxy
