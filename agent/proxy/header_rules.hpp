// The request path without sockets: validate a parsed request head, pick its route, and
// build the head to send upstream — or say which error to answer. Pure (no I/O), so the
// fuzz target tests/fuzz/fuzz_proxy_request.cpp drives it directly.
//
// What it enforces:
//  - origin-form only: absolute-form (`GET http://x/ HTTP/1.1`) and asterisk-form -> 400,
//    CONNECT -> 405 (this is not an open proxy); dot-segments in the path -> 400;
//  - HTTP/1.0 or 1.1, exactly one Host (required in 1.1);
//  - framing beyond Beast's parser (which already rejects CL+TE and differing CLs): one
//    Content-Length field at most; Transfer-Encoding only as a single "chunked";
//  - more than max_header_count fields -> 431;
//  - caller uid/gid restrictions of the route -> 403; Authorization from the app: dropped
//    (replaced by the route's token later) or rejected, per route.client_authorization;
//  - Expect: only 100-continue (answered by the proxy itself), anything else -> 417.
// What it writes upstream: HTTP/1.1, the rewritten target, Host = upstream authority,
// hop-by-hop fields removed (Connection and the fields it names, Keep-Alive, TE, Trailer,
// Transfer-Encoding, Upgrade, Proxy-*), Content-Length/Expect/Authorization removed (the
// session sets framing and the token), the route's set_headers, X-Forwarded-* only with
// route.add_forwarded.
#pragma once

#include "agent/net/asio.hpp"
#include "agent/proxy/errors.hpp"
#include "agent/proxy/router.hpp"

#include <cstdint>
#include <optional>
#include <variant>

namespace mtls::proxy {

struct PreparedRequest {
    std::size_t route_index = 0;
    net::http::request_header<> upstream;         // framing (Content-Length / chunked) not yet set
    std::optional<std::uint64_t> content_length;  // request body length, when given
    bool chunked = false;                         // request body is chunked
    bool expect_continue = false;                 // the app waits for 100 Continue
    bool idempotent = false;                      // GET HEAD OPTIONS TRACE PUT DELETE
    bool client_keep_alive = true;                // the app's connection may be reused

    bool has_body() const { return chunked || (content_length && *content_length > 0); }
};

using PrepareResult = std::variant<PreparedRequest, ProxyError>;

PrepareResult prepare_request(const net::http::request_header<>& in, const RouteTable& routes,
                              const Caller& caller, std::size_t max_header_count);

// Whether a field never crosses the proxy (RFC 9110 7.6.1), given the fields named by the
// message's Connection header.
bool is_hop_by_hop(std::string_view name, const std::vector<std::string>& connection_tokens);

// The response head to send to the app: hop-by-hop fields removed (framing is set by the
// session). Pure, shared with the fuzz target.
net::http::response_header<> downstream_response_head(const net::http::response_header<>& up);

// 401 with `WWW-Authenticate: Bearer error="invalid_token"` (RFC 6750 3.1).
bool is_invalid_token_challenge(const net::http::response_header<>& res);

}  // namespace mtls::proxy
