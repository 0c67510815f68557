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
    auto res = prepare_request(r, table(), Caller{}, 100);
    ASSERT_TRUE(std::holds_alternative<PreparedRequest>(res));
    auto& p = std::get<PreparedRequest>(res);
    EXPECT_TRUE(p.chunked);
    EXPECT_FALSE(p.idempotent);
    EXPECT_EQ(p.upstream.target(), "/v2/v1/orders");
    EXPECT_EQ(p.upstream[http::field::host], "api.partner-a.example");
    for (auto f :
         {"Connection", "X-Hop", "TE", "Transfer-Encoding", "Proxy-Authorization", "Authorization"})
        EXPECT_EQ(p.upstream.count(f), 0u) << f;
    EXPECT_EQ(p.upstream["X-App"], "kept");
}

ProxyError error_of(const http::request_header<>& r, std::size_t max_count = 100) {
    auto res = prepare_request(r, table(), Caller{}, max_count);
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
        auto res = prepare_request(rq, t, c, 100);
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
