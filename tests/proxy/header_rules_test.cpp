#include "agent/proxy/header_rules.hpp"

#include <gtest/gtest.h>

using namespace mtls;
using namespace mtls::proxy;
namespace http = net::http;

namespace {

RouteTable table() {
    config::Route a;
    a.name = "a";
    a.path_prefix = "/partner-a/";
    a.upstream = "https://api.partner-a.example/v2/";
    config::Route h;
    h.name = "h";
    h.host = "partner-h.local";
    h.upstream = "https://[::1]:8443/base";
    config::Route deep;
    deep.name = "deep";
    deep.path_prefix = "/partner-a/special/";
    deep.upstream = "https://special.example:444/";
    return RouteTable({a, h, deep});
}

// What append_upstream_head writes for `in`, parsed back by Beast.
http::request_header<> upstream_of(const http::request_header<>& in, const PreparedRequest& p,
                                   const RouteTable& t, const Caller& c = {},
                                   const UpstreamExtras& extras = {}) {
    std::string wire;
    append_upstream_head(wire, in, p, t, c, extras);
    http::request_parser<http::empty_body> back;
    back.eager(false);
    net::error_code ec;
    back.put(net::asio::buffer(wire), ec);
    EXPECT_FALSE(ec) << ec.message() << "\n" << wire;
    EXPECT_TRUE(back.is_header_done()) << wire;
    return back.get().base();
}

config::Listener listener(std::size_t max_header_count = 100) {
    config::Listener l;
    l.max_header_count = max_header_count;
    l.allowed_hosts = {"app.local"};
    return l;
}

http::request_header<> req(http::verb m, std::string target, std::string host = "localhost") {
    http::request_header<> r;
    r.method(m);
    r.target(target);
    r.version(11);
    if (!host.empty()) r.set(http::field::host, host);
    return r;
}

TEST(Router, PrefixHostAndLongestMatch) {
    auto t = table();
    auto m = t.match("/partner-a/v1/orders?x=1", "localhost");
    ASSERT_TRUE(m);
    EXPECT_EQ(t.routes()[m->index].route.name, "a");
    EXPECT_EQ(m->upstream_target, "/v2/v1/orders?x=1");
    m = t.match("/partner-a", "localhost");
    ASSERT_TRUE(m);
    EXPECT_EQ(m->upstream_target, "/v2/");
    m = t.match("/partner-a/special/x", "localhost");
    ASSERT_TRUE(m);
    EXPECT_EQ(t.routes()[m->index].route.name, "deep");
    EXPECT_EQ(m->upstream_target, "/x");
    m = t.match("/anything", "Partner-H.local:8480");
    ASSERT_TRUE(m);
    EXPECT_EQ(m->upstream_target, "/base/anything");
    EXPECT_EQ(t.routes()[m->index].target.authority, "[::1]:8443");
    EXPECT_FALSE(t.match("/partner-b/x", "localhost"));
}

TEST(Router, UpstreamUrls) {
    std::string err;
    EXPECT_FALSE(parse_upstream_url("http://x/", err));
    EXPECT_FALSE(parse_upstream_url("https://u@x/", err));
    EXPECT_FALSE(parse_upstream_url("https://x:99999/", err));
    EXPECT_FALSE(parse_upstream_url("https://x/?q", err));
    auto t = parse_upstream_url("https://127.0.0.1:8443", err);
    ASSERT_TRUE(t);
    EXPECT_TRUE(t->host_is_ip);
    EXPECT_EQ(t->base_path, "/");
    EXPECT_EQ(t->authority, "127.0.0.1:8443");
}

TEST(HeaderRules, RewritesAndStrips) {
    auto r = req(http::verb::post, "/partner-a/v1/orders");
    r.set(http::field::connection, "keep-alive, X-Hop");
    r.set("X-Hop", "1");
    r.set(http::field::te, "trailers");
    r.set(http::field::transfer_encoding, "chunked");
    r.set(http::field::proxy_authorization, "secret");
    r.set(http::field::authorization, "Basic eA==");
    r.set("X-App", "kept");
    auto t = table();
    auto res = prepare_request(r, t, Caller{}, listener());
    ASSERT_TRUE(std::holds_alternative<PreparedRequest>(res));
    auto& p = std::get<PreparedRequest>(res);
    EXPECT_TRUE(p.chunked);
    EXPECT_FALSE(p.idempotent);
    auto up = upstream_of(r, p, t);
    EXPECT_EQ(up.method(), http::verb::post);
    EXPECT_EQ(up.version(), 11);
    EXPECT_EQ(up.target(), "/v2/v1/orders");
    EXPECT_EQ(up[http::field::host], "api.partner-a.example");
    for (auto f :
         {"Connection", "X-Hop", "TE", "Transfer-Encoding", "Proxy-Authorization", "Authorization"})
        EXPECT_EQ(up.count(f), 0u) << f;
    EXPECT_EQ(up["X-App"], "kept");

    // The session's framing and token come last, once each.
    UpstreamExtras extras;
    extras.chunked = true;
    extras.bearer_token = "tok.en";
    up = upstream_of(r, p, t, {}, extras);
    EXPECT_EQ(up.count(http::field::transfer_encoding), 1u);
    EXPECT_EQ(up[http::field::transfer_encoding], "chunked");
    EXPECT_EQ(up.count(http::field::authorization), 1u);
    EXPECT_EQ(up[http::field::authorization], "Bearer tok.en");
    extras = {};
    extras.content_length = "12";
    up = upstream_of(r, p, t, {}, extras);
    EXPECT_EQ(up.count(http::field::transfer_encoding), 0u);
    EXPECT_EQ(up[http::field::content_length], "12");
}

TEST(HeaderRules, SetHeadersAndForwardedReplaceTheAppsFields) {
    config::Route a;
    a.name = "a";
    a.path_prefix = "/a/";
    a.upstream = "https://api.example:8443/";
    a.set_headers = {{"X-Partner", "17"}};
    a.add_forwarded = true;
    config::Route plain = a;
    plain.name = "plain";
    plain.path_prefix = "/plain/";
    plain.set_headers.clear();
    plain.add_forwarded = false;
    RouteTable t({a, plain});
    Caller c;
    c.address = "127.0.0.1:5000";
    auto r = req(http::verb::get, "/a/x", "app.local");
    r.insert("x-partner", "from-app");
    r.insert("X-Forwarded-For", "10.0.0.1");
    r.insert("X-Forwarded-Host", "spoofed");
    r.insert("X-Forwarded-Proto", "https");
    auto res = prepare_request(r, t, c, listener());
    ASSERT_TRUE(std::holds_alternative<PreparedRequest>(res));
    auto up = upstream_of(r, std::get<PreparedRequest>(res), t, c);
    EXPECT_EQ(up.count("X-Partner"), 1u);
    EXPECT_EQ(up["X-Partner"], "17");
    EXPECT_EQ(up.count("X-Forwarded-For"), 1u);
    EXPECT_EQ(up["X-Forwarded-For"], "10.0.0.1, 127.0.0.1:5000");
    EXPECT_EQ(up.count("X-Forwarded-Host"), 1u);
    EXPECT_EQ(up["X-Forwarded-Host"], "app.local");
    EXPECT_EQ(up["X-Forwarded-Proto"], "http");
    EXPECT_EQ(up[http::field::host], "api.example:8443");

    // Without add_forwarded nothing is added and the app's fields pass as they are.
    r.target("/plain/x");
    res = prepare_request(r, t, c, listener());
    ASSERT_TRUE(std::holds_alternative<PreparedRequest>(res));
    up = upstream_of(r, std::get<PreparedRequest>(res), t, c);
    EXPECT_EQ(up["X-Forwarded-For"], "10.0.0.1");
    EXPECT_EQ(up["X-Forwarded-Host"], "spoofed");
    EXPECT_EQ(up["X-Partner"], "from-app");
}

ProxyError error_of(const http::request_header<>& r, std::size_t max_count = 100) {
    auto res = prepare_request(r, table(), Caller{}, listener(max_count));
    if (auto* e = std::get_if<ProxyError>(&res)) return *e;
    return {};
}

TEST(HeaderRules, Refusals) {
    EXPECT_EQ(error_of(req(http::verb::get, "http://evil/")).code, "bad_request");
    EXPECT_EQ(error_of(req(http::verb::connect, "evil:443")).code, "method_not_allowed");
    EXPECT_EQ(error_of(req(http::verb::get, "/partner-a/../x")).code, "bad_request");
    EXPECT_EQ(error_of(req(http::verb::get, "/partner-a/%2E%2e/x")).code, "bad_request");
    EXPECT_EQ(error_of(req(http::verb::get, "/nowhere")).code, "no_route");
    EXPECT_EQ(error_of(req(http::verb::get, "/partner-a/x", "")).code, "bad_request");
    auto two_cl = req(http::verb::post, "/partner-a/x");
    two_cl.insert(http::field::content_length, "1");
    two_cl.insert(http::field::content_length, "1");
    EXPECT_EQ(error_of(two_cl).code, "bad_request");
    auto gzip = req(http::verb::post, "/partner-a/x");
    gzip.set(http::field::transfer_encoding, "gzip, chunked");
    EXPECT_EQ(error_of(gzip).code, "bad_request");
    auto many = req(http::verb::get, "/partner-a/x");
    for (int i = 0; i < 10; ++i) many.insert("X-" + std::to_string(i), "v");
    EXPECT_EQ(error_of(many, 5).code, "headers_too_large");
    EXPECT_EQ(error_of(many, 5).status, http::status::request_header_fields_too_large);
    auto expect = req(http::verb::post, "/partner-a/x");
    expect.set(http::field::expect, "something-else");
    EXPECT_EQ(error_of(expect).status, http::status::expectation_failed);
}

// Issue #16 item 9: paths servers decode differently never pass by default.
TEST(HeaderRules, AmbiguousPathsAreRefusedUnlessTheRouteAllowsThem) {
    for (const char* p : {"/partner-a/..;/admin", "/partner-a/.;x/y", "/partner-a/%2e%2E;v=1/admin",
                          "/partner-a/a\\b", "/partner-a/a%5Cb", "/partner-a/a%2fb",
                          "/partner-a/a%2Fb", "/partner-a/%252e%252e/admin", "/partner-a/a%252Fb",
                          "/partner-a/a%255cb", "/partner-a/a%00b"}) {
        auto e = error_of(req(http::verb::get, p));
        EXPECT_EQ(e.code, "ambiguous_path") << p;
        EXPECT_EQ(e.status, http::status::bad_request) << p;
        EXPECT_NE(e.message.find("allow_ambiguous_paths"), std::string::npos) << e.message;
    }
    // Ordinary escapes, ';' parameters on real segments and a query with those characters.
    for (const char* p : {"/partner-a/a%20b", "/partner-a/x;v=1/y", "/partner-a/a%25b",
                          "/partner-a/...", "/partner-a/..x", "/partner-a/x?q=%2f..;\\"})
        EXPECT_EQ(error_of(req(http::verb::get, p)).code, "") << p;

    config::Route open;
    open.name = "open";
    open.path_prefix = "/o/";
    open.upstream = "https://x.example/";
    open.allow_ambiguous_paths = true;
    RouteTable t({open});
    auto r = req(http::verb::get, "/o/a%2fb/..;/c");
    auto res = prepare_request(r, t, Caller{}, listener());
    ASSERT_TRUE(std::holds_alternative<PreparedRequest>(res));
    EXPECT_EQ(std::get<PreparedRequest>(res).upstream_target, "/a%2fb/..;/c");
    // Plain dot segments stay refused, whatever the route says.
    EXPECT_TRUE(std::holds_alternative<ProxyError>(
        prepare_request(req(http::verb::get, "/o/../x"), t, Caller{}, listener())));
}

// Issue #16 item 4: DNS rebinding and requests web pages make, on TCP listeners.
TEST(HeaderRules, BrowserRequestsAndForeignHostsAreRefusedOnTcp) {
    auto t = table();
    Caller tcp;
    Caller unix_caller{true, 1000, {1000}, "unix:uid=1000"};
    auto code = [&](const http::request_header<>& r, const Caller& c,
                    const config::Listener& l = listener()) {
        auto res = prepare_request(r, t, c, l);
        auto* e = std::get_if<ProxyError>(&res);
        return e ? e->code : std::string("ok");
    };
    for (const char* host :
         {"localhost", "LOCALHOST:8480", "localhost.", "127.0.0.1", "127.0.0.1:8480", "127.1.2.3",
          "[::1]:8480", "partner-h.local", "app.local:80"})
        EXPECT_EQ(code(req(http::verb::get, "/partner-a/x", host), tcp), "ok") << host;
    for (const char* host :
         {"attacker.example", "attacker.example:8480", "localhost.attacker.example", "10.0.0.1",
          "[::2]", "127.0.0.1.nip.io"}) {
        auto r = req(http::verb::get, "/partner-a/x", host);
        EXPECT_EQ(code(r, tcp), "host_not_allowed") << host;
        EXPECT_EQ(code(r, unix_caller), "ok") << host;  // a Unix socket is no browser's
    }
    // A listener address is this proxy's name; "*" accepts any Host.
    config::Listener wide = listener();
    wide.addresses = {"10.0.0.1:8480"};
    EXPECT_EQ(code(req(http::verb::get, "/partner-a/x", "10.0.0.1:8480"), tcp, wide), "ok");
    wide.allowed_hosts = {"*"};
    EXPECT_EQ(code(req(http::verb::get, "/partner-a/x", "anything.example"), tcp, wide), "ok");

    auto with = [&](const char* field, const char* value) {
        auto r = req(http::verb::post, "/partner-a/x", "127.0.0.1:8480");
        r.set(field, value);
        return r;
    };
    EXPECT_EQ(code(with("Origin", "https://attacker.example"), tcp), "cross_site_request");
    EXPECT_EQ(code(with("Origin", "null"), tcp), "cross_site_request");
    EXPECT_EQ(code(with("Origin", "http://localhost:3000"), tcp), "cross_site_request");
    EXPECT_EQ(code(with("Origin", "http://127.0.0.1:8480"), tcp), "ok");  // same origin
    EXPECT_EQ(code(with("Sec-Fetch-Site", "cross-site"), tcp), "cross_site_request");
    EXPECT_EQ(code(with("Sec-Fetch-Site", "same-site"), tcp), "cross_site_request");
    EXPECT_EQ(code(with("Sec-Fetch-Site", "same-origin"), tcp), "ok");
    EXPECT_EQ(code(with("Sec-Fetch-Site", "none"), tcp), "ok");
    EXPECT_EQ(code(with("Origin", "https://attacker.example"), unix_caller), "ok");
    config::Listener app = listener();
    app.allowed_origins = {"http://localhost:3000"};
    auto listed = with("Origin", "http://LOCALHOST:3000");
    listed.set("Sec-Fetch-Site", "same-site");
    EXPECT_EQ(code(listed, tcp, app), "ok");
    EXPECT_EQ(code(with("Origin", "https://attacker.example"), tcp, app), "cross_site_request");
    app.allowed_origins = {"*"};
    EXPECT_EQ(code(with("Sec-Fetch-Site", "cross-site"), tcp, app), "ok");
    auto e = prepare_request(with("Origin", "https://attacker.example"), t, tcp, listener());
    ASSERT_TRUE(std::holds_alternative<ProxyError>(e));
    EXPECT_EQ(std::get<ProxyError>(e).status, http::status::forbidden);
    EXPECT_NE(std::get<ProxyError>(e).message.find("listener.allowed_origins"), std::string::npos);
}

TEST(HeaderRules, CallerRestrictions) {
    config::Route r;
    r.name = "local";
    r.path_prefix = "/l/";
    r.upstream = "https://x.example/";
    r.allowed_uids = {1000};
    r.allowed_gids = {50};
    RouteTable t({r});
    Caller tcp;
    Caller uid{true, 1000, {}, "unix"};
    Caller gid{true, 2000, {7, 50}, "unix"};
    Caller other{true, 2000, {7}, "unix"};
    auto rq = req(http::verb::get, "/l/x");
    auto code = [&](const Caller& c) {
        auto res = prepare_request(rq, t, c, listener());
        auto* e = std::get_if<ProxyError>(&res);
        return e ? e->code : std::string("ok");
    };
    EXPECT_EQ(code(tcp), "caller_not_allowed");
    EXPECT_EQ(code(uid), "ok");
    EXPECT_EQ(code(gid), "ok");
    EXPECT_EQ(code(other), "caller_not_allowed");
}

TEST(HeaderRules, InvalidTokenChallenge) {
    http::response_header<> r;
    r.result(http::status::unauthorized);
    r.set(http::field::www_authenticate, "Bearer realm=\"x\", error=\"invalid_token\"");
    EXPECT_TRUE(is_invalid_token_challenge(r));
    r.set(http::field::www_authenticate, "Bearer realm=\"x\"");
    EXPECT_FALSE(is_invalid_token_challenge(r));
}

}  // namespace
