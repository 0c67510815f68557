// The proxy's request path without sockets: arbitrary bytes -> Beast's request parser (with
// the listener's limits) -> prepare_request (validation, routing, header rewriting); and
// the same bytes as an upstream response head -> downstream_response_head.
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
            auto r1 = proxy::prepare_request(p.get().base(), routes(), tcp, 100);
            auto r2 = proxy::prepare_request(p.get().base(), routes(), unix_caller, 100);
            if (auto* e = std::get_if<proxy::ProxyError>(&r1)) {
                auto res = proxy::error_response(*e, 11, false);
                if (res.body().empty()) __builtin_trap();
            } else {
                auto& prep = std::get<proxy::PreparedRequest>(r1);
                // Invariants: nothing hop-by-hop or framing-related leaves the proxy.
                for (auto f : {http::field::connection, http::field::transfer_encoding,
                               http::field::te, http::field::upgrade,
                               http::field::proxy_authorization, http::field::content_length})
                    if (prep.upstream.count(f) != 0) __builtin_trap();
                if (prep.upstream.target().empty() || prep.upstream.target().front() != '/')
                    __builtin_trap();
                if (prep.upstream.count(http::field::host) != 1) __builtin_trap();
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
            auto down = proxy::downstream_response_head(p.get().base());
            if (down.count(http::field::transfer_encoding) != 0) __builtin_trap();
            (void)proxy::is_invalid_token_challenge(p.get().base());
        }
    }
    return 0;
}
