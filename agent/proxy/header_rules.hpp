// The request path without sockets: validate a parsed request head, pick its route, and
// build the head to send upstream — or say which error to answer. Pure (no I/O), so the
// fuzz target tests/fuzz/fuzz_proxy_request.cpp drives it directly.
//
// What it enforces:
//  - origin-form only: absolute-form (`GET http://x/ HTTP/1.1`) and asterisk-form -> 400,
//    CONNECT -> 405 (this is not an open proxy); dot-segments in the path -> 400, and
//    ambiguous paths (path_rules.hpp: "..;", backslashes, %2f, %5c, double encoding) -> 400
//    ambiguous_path unless the route sets allow_ambiguous_paths;
//  - on TCP listeners, a web page's request: a Host that is not this proxy's (DNS
//    rebinding) or a cross-site Origin / Sec-Fetch-Site -> 403 (browser_guard.hpp);
//  - HTTP/1.0 or 1.1, exactly one Host (required in 1.1);
//  - framing beyond Beast's parser (which already rejects CL+TE and differing CLs): one
//    Content-Length field at most; Transfer-Encoding only as a single "chunked";
//  - more than max_header_count fields -> 431;
//  - caller uid/gid restrictions of the route -> 403; Authorization from the app: dropped
//    (replaced by the route's token later) or rejected, per route.client_authorization;
//  - Expect: only 100-continue (answered by the proxy itself), anything else -> 417.
// What it writes upstream (append_upstream_head, straight from the app's parsed head):
// HTTP/1.1, the rewritten target, Host = upstream authority, hop-by-hop fields removed
// (Connection and the fields it names, Keep-Alive, TE, Trailer, Transfer-Encoding,
// Upgrade, Proxy-*), the app's Content-Length/Expect/Authorization removed, the route's
// set_headers, X-Forwarded-* only with route.add_forwarded, then the session's framing
// and token.
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
    std::string upstream_target;                  // the request-target for the partner
    std::vector<std::string> connection_tokens;   // what the app's Connection names, lower-case
    std::optional<std::uint64_t> content_length;  // request body length, when given
    bool chunked = false;                         // request body is chunked
    bool expect_continue = false;                 // the app waits for 100 Continue
    bool idempotent = false;                      // GET HEAD OPTIONS TRACE PUT DELETE
    bool client_keep_alive = true;                // the app's connection may be reused

    bool has_body() const { return chunked || (content_length && *content_length > 0); }
};

using PrepareResult = std::variant<PreparedRequest, ProxyError>;

PrepareResult prepare_request(const net::http::request_header<>& in, const RouteTable& routes,
                              const Caller& caller, const config::Listener& listener);

// What the session adds to the upstream head: the body's framing and the token.
struct UpstreamExtras {
    std::string_view content_length;  // the Content-Length value; empty: none
    bool chunked = false;             // Transfer-Encoding: chunked
    std::string_view bearer_token;    // Authorization: Bearer …; empty: none
};

// Appends the head to send the partner for `in`, which prepare_request accepted as `prep`
// (same routes and caller), ending with `extras` and the empty line.
void append_upstream_head(std::string& out, const net::http::request_header<>& in,
                          const PreparedRequest& prep, const RouteTable& routes,
                          const Caller& caller, const UpstreamExtras& extras);

// Whether a field (Beast's enumerator for its name, and the name) never crosses the proxy
// (RFC 9110 7.6.1), given the fields named by the message's Connection header.
bool is_hop_by_hop(net::http::field f, std::string_view name,
                   const std::vector<std::string>& connection_tokens);

// How the session frames the response body it sends the app.
struct DownstreamFraming {
    unsigned version = 11;            // the app's HTTP version: 10 or 11
    std::string_view content_length;  // the Content-Length value to send; empty: none
    bool chunked = false;             // Transfer-Encoding: chunked
    bool keep_alive = true;           // the app's connection stays open afterwards
};

// Appends the response head for the app to `out`, written straight from the partner's
// parsed head (no copy of its fields): the partner's status and reason, its fields minus
// hop-by-hop ones and its Content-Length, then the framing fields of `f` (Content-Length
// or Transfer-Encoding; Connection: close for HTTP/1.1 when the connection ends,
// Connection: keep-alive for HTTP/1.0 when it stays). Pure, shared with the fuzz target.
void append_downstream_head(std::string& out, const net::http::response_header<>& up,
                            const DownstreamFraming& f);

// 401 with `WWW-Authenticate: Bearer error="invalid_token"` (RFC 6750 3.1).
bool is_invalid_token_challenge(const net::http::response_header<>& res);

}  // namespace mtls::proxy
