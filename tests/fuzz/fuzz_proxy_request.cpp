// The proxy's request path without sockets: arbitrary bytes -> Beast's request parser (with
// the listener's limits) -> prepare_request (validation, routing, header rewriting); and
// the same bytes as an upstream response head -> append_downstream_head, parsed back.
#include "agent/proxy/header_rules.hpp"

#include <cstddef>
#include <cstdint>

using namespace mtls;
namespace http = net::http;

namespace {

const proxy::RouteTable& routes() {
    static const proxy::RouteTable table = [] {
        config::Route a;
        a.name = "a";
        a.path_prefix = "/partner-a/";
        a.upstream = "https://api.partner-a.example/v2/";
        a.set_headers = {{"X-Partner", "17"}};
        a.add_forwarded = true;
        config::Route h;
        h.name = "h";
        h.host = "partner-h.local";
        h.upstream = "https://[::1]:8443/base";
        h.client_authorization = config::Route::ClientAuthorization::reject;
        config::Route u;
        u.name = "u";
        u.path_prefix = "/unix-only/";
        u.upstream = "https://127.0.0.1:9443/";
        u.allowed_uids = {1000};
        return proxy::RouteTable({a, h, u});
    }();
    return table;
}

const config::Listener& listener() {
    static const config::Listener l = [] {
        config::Listener l;
        l.allowed_hosts = {"app.local"};
        l.allowed_origins = {"http://localhost:3000"};
        return l;
    }();
    return l;
}

// A head the proxy wrote, parsed again by Beast: it must parse, completely.
template <bool isRequest>
http::header<isRequest> parse_back(const std::string& wire) {
    http::parser<isRequest, http::empty_body> back;
    back.header_limit(1 << 20);
    back.eager(false);
    net::error_code ec;
    back.put(net::asio::buffer(wire), ec);
    if (ec || !back.is_header_done()) __builtin_trap();
    return back.get().base();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    net::asio::const_buffer in(data, size);
    {
        http::request_parser<http::empty_body> p;
        p.header_limit(16384);
        p.eager(false);
        net::error_code ec;
        p.put(in, ec);
        if (!ec && p.is_header_done()) {
            proxy::Caller tcp;
            tcp.address = "127.0.0.1:1";
            proxy::Caller unix_caller{true, 1000, {1000}, "unix:uid=1000"};
            auto r1 = proxy::prepare_request(p.get().base(), routes(), tcp, listener());
            auto r2 = proxy::prepare_request(p.get().base(), routes(), unix_caller, listener());
            if (auto* e = std::get_if<proxy::ProxyError>(&r1)) {
                auto res = proxy::error_response(*e, 11, false);
                if (res.body().empty()) __builtin_trap();
            } else {
                auto& prep = std::get<proxy::PreparedRequest>(r1);
                std::string wire;
                proxy::UpstreamExtras extras;
                extras.content_length = "7";
                extras.bearer_token = "t0k";
                proxy::append_upstream_head(wire, p.get().base(), prep, routes(), tcp, extras);
                const auto up = parse_back<true>(wire);
                // Invariants: nothing hop-by-hop leaves the proxy, framing and credentials
                // are the proxy's own, once each.
                for (auto f : {http::field::connection, http::field::transfer_encoding,
                               http::field::te, http::field::upgrade,
                               http::field::proxy_authorization, http::field::keep_alive})
                    if (up.count(f) != 0) __builtin_trap();
                if (up.count(http::field::content_length) != 1 ||
                    up[http::field::content_length] != "7")
                    __builtin_trap();
                if (up.count(http::field::authorization) != 1 ||
                    up[http::field::authorization] != "Bearer t0k")
                    __builtin_trap();
                if (up.target().empty() || up.target().front() != '/') __builtin_trap();
                if (up.count(http::field::host) != 1) __builtin_trap();
            }
            (void)r2;
        }
    }
    {
        http::response_parser<http::empty_body> p;
        p.header_limit(65536);
        p.eager(false);
        net::error_code ec;
        p.put(in, ec);
        if (!ec && p.is_header_done()) {
            // The head for the app must parse, keep the status and carry only our framing.
            for (bool chunked : {false, true}) {
                proxy::DownstreamFraming f;
                f.version = chunked ? 11 : 10;
                f.chunked = chunked;
                f.content_length = chunked ? "" : "5";
                f.keep_alive = !chunked;
                std::string wire;
                proxy::append_downstream_head(wire, p.get().base(), f);
                const auto h = parse_back<false>(wire);
                if (h.result_int() != p.get().result_int() || h.version() != f.version)
                    __builtin_trap();
                if (h.count(http::field::transfer_encoding) != (chunked ? 1u : 0u) ||
                    h.count(http::field::content_length) != (chunked ? 0u : 1u) ||
                    h.count(http::field::upgrade) != 0 || h.count(http::field::keep_alive) != 0)
                    __builtin_trap();
                // Only our Connection field: close (1.1) or keep-alive (1.0) when needed.
                std::string_view want = f.version == 11 ? (f.keep_alive ? "" : "close")
                                                        : (f.keep_alive ? "keep-alive" : "");
                if (h.count(http::field::connection) > 1 || h[http::field::connection] != want)
                    __builtin_trap();
            }
            (void)proxy::is_invalid_token_challenge(p.get().base());
        }
    }
    return 0;
}
