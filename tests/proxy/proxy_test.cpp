// The proxy against real partners: two partner-sandbox processes with different CAs, real
// TLS over loopback, the proxy on a thread of this process.
#include "tests/proxy/proxy_fixture.hpp"
#include "tests/support/poll.hpp"
#include "tests/support/sandbox_process.hpp"

#include <gtest/gtest.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <thread>

using namespace mtls;
using namespace mtls::proxytest;
using mtls::test::poll_until;
using mtls::test::SandboxProcess;
using mtls::test::TempDir;
using nlohmann::json;

namespace {

struct Partners {
    TempDir dir{"mtls-proxy-test"};
    std::unique_ptr<SandboxProcess> a, b;
    std::filesystem::path ca_a, ca_b;
};
Partners* partners = nullptr;

// The body of the partner sandbox's /echo/bytes/<n>: a…z repeated, restarting every 64 KiB.
std::string echo_bytes(std::size_t n) {
    std::string p(n, '\0');
    for (std::size_t i = 0; i < n; ++i) p[i] = static_cast<char>('a' + i % 65536 % 26);
    return p;
}

class ProxyTest : public ::testing::Test {
  protected:
    static void SetUpTestSuite() {
        partners = new Partners;
        std::filesystem::create_directories(partners->dir / "a");
        std::filesystem::create_directories(partners->dir / "b");
        partners->a = std::make_unique<SandboxProcess>(partners->dir / "a");
        partners->ca_a = partners->dir / "a" / "ca";
        // B has its own CA but accepts client certificates of A's CA (our test identity).
        partners->b = std::make_unique<SandboxProcess>(
            partners->dir / "b",
            std::vector<std::string>{"--api-trust-ca",
                                     (partners->ca_a / "ca-bundle.pem").string()});
        partners->ca_b = partners->dir / "b" / "ca";
    }
    static void TearDownTestSuite() {
        delete partners;
        partners = nullptr;
    }

    void SetUp() override {
        ids.publish(issue_identity(partners->ca_a, "proxy-test-host", ids.next_generation()));
    }

    static config::Route route(const std::string& name, const std::string& prefix,
                               const SandboxProcess& p) {
        config::Route r;
        r.name = name;
        r.path_prefix = prefix;
        r.upstream = p.api_url() + "/";
        r.ca_file = p.ca_bundle();
        return r;
    }
    static config::Listener listener() {
        config::Listener l;
        l.addresses = {"127.0.0.1:0"};
        return l;
    }
    static json api_stats(const SandboxProcess& p) { return p.stats()["services"]["api"]; }

    identity::IdentityStore ids;
    CountingTokens tokens;
};

TEST_F(ProxyTest, TwoRoutesToTwoPartnersWithDifferentCAs) {
    auto wrong_ca = route("b-with-a-ca", "/wrong/", *partners->b);
    wrong_ca.ca_file = partners->a->ca_bundle();
    ProxyRunner px(listener(),
                   {route("a", "/a/", *partners->a), route("b", "/b/", *partners->b), wrong_ca},
                   ids, nullptr);
    Client c(px.port());
    auto ra = c.request(http::verb::get, "/a/echo/headers");
    ASSERT_EQ(ra.result_int(), 200) << ra.body();
    auto ja = json::parse(ra.body());
    EXPECT_EQ(ja["target"], "/echo/headers");
    EXPECT_FALSE(ja["tls"]["client_certificate"].is_null());
    EXPECT_EQ(ja["headers"]["host"], "127.0.0.1:" + std::to_string(partners->a->api_port()));

    auto rb = c.request(http::verb::get, "/b/echo/headers?x=1");
    ASSERT_EQ(rb.result_int(), 200) << rb.body();
    EXPECT_EQ(json::parse(rb.body())["target"], "/echo/headers?x=1");

    auto rw = c.request(http::verb::get, "/wrong/echo/headers");
    EXPECT_EQ(rw.result_int(), 502);
    auto jw = json::parse(rw.body());
    EXPECT_EQ(jw["error"], "upstream_tls");
    EXPECT_NE(jw["message"].get<std::string>().find("certificate verify failed for 127.0.0.1"),
              std::string::npos)
        << jw;
    // Counters are written right after the response is sent: poll for them.
    // A proxy-made 502 is a proxy error, not the partner's 5xx; it is a failure of the route.
    EXPECT_TRUE(poll_until([&] { return px.stats().routes()[2].proxy_errors == 1u; }))
        << px.stats().routes()[2].proxy_errors;
    EXPECT_EQ(px.stats().routes()[2].status_5xx, 0u);
    EXPECT_EQ(px.stats().routes()[2].requests, 1u);
    EXPECT_EQ(px.stats().routes()[2].consecutive_failures, 1u);
    EXPECT_EQ(px.stats().routes()[2].last_failure, mtls::proxy::RouteFailure::upstream_tls);
    EXPECT_EQ(px.stats().routes()[0].status_2xx, 1u);
}

TEST_F(ProxyTest, SpkiPinsAreEnforced) {
    auto good = route("good", "/good/", *partners->a);
    good.spki_pins = {spki_pin_of(partners->a->info()["server_cert"].get<std::string>())};
    auto bad = route("bad", "/bad/", *partners->a);
    bad.spki_pins = {"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="};
    ProxyRunner px(listener(), {good, bad}, ids, nullptr);
    Client c(px.port());
    EXPECT_EQ(c.request(http::verb::get, "/good/echo/status/200").result_int(), 200);
    auto r = c.request(http::verb::get, "/bad/echo/status/200");
    EXPECT_EQ(r.result_int(), 502);
    auto j = json::parse(r.body());
    EXPECT_EQ(j["error"], "upstream_tls");
    EXPECT_NE(j["message"].get<std::string>().find("SPKI pin mismatch"), std::string::npos) << j;
}

TEST_F(ProxyTest, NoRouteAbsoluteFormAndConnectAreRefused) {
    ProxyRunner px(listener(), {route("a", "/a/", *partners->a)}, ids, nullptr);
    Client c(px.port());
    auto r = c.request(http::verb::get, "/nowhere/x");
    EXPECT_EQ(r.result_int(), 404);
    EXPECT_EQ(r[http::field::content_type], "application/json");
    auto j = json::parse(r.body());
    EXPECT_EQ(j["error"], "no_route");
    EXPECT_EQ(j["message"].get<std::string>().find(partners->a->api_url()), std::string::npos);
    // The connection stays usable after a 404 without body.
    EXPECT_EQ(c.request(http::verb::get, "/a/echo/status/200").result_int(), 200);

    Client c2(px.port());
    auto abs = c2.raw("GET http://127.0.0.1/a/echo/status/200 HTTP/1.1\r\nHost: localhost\r\n\r\n");
    EXPECT_EQ(abs.result_int(), 400);
    EXPECT_EQ(json::parse(abs.body())["error"], "bad_request");
    Client c3(px.port());
    auto con = c3.raw("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n");
    EXPECT_EQ(con.result_int(), 405);
    Client c4(px.port());
    EXPECT_EQ(c4.raw("GET /a/../etc/passwd HTTP/1.1\r\nHost: localhost\r\n\r\n").result_int(), 400);
}

TEST_F(ProxyTest, SmugglingAttemptsAreRejected) {
    ProxyRunner px(listener(), {route("a", "/a/", *partners->a)}, ids, nullptr);
    const std::vector<std::pair<std::string, std::string>> attempts = {
        {"CL+TE",
         "POST /a/echo/body HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\nTransfer-Encoding: "
         "chunked\r\n\r\n0\r\n\r\n"},
        {"TE+CL",
         "POST /a/echo/body HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: "
         "chunked\r\nContent-Length: "
         "4\r\n\r\n0\r\n\r\n"},
        {"two different CLs",
         "POST /a/echo/body HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\nContent-Length: "
         "5\r\n\r\nabcde"},
        {"two equal CLs",
         "POST /a/echo/body HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\nContent-Length: "
         "4\r\n\r\nabcd"},
        {"obs-fold",
         "GET /a/echo/headers HTTP/1.1\r\nHost: localhost\r\nX-A: 1\r\n Transfer-Encoding: "
         "chunked\r\n\r\n"},
        {"TE not chunked",
         "POST /a/echo/body HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: gzip\r\n\r\nxyz"},
        {"TE chunked then identity",
         "POST /a/echo/body HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked, "
         "identity\r\n\r\n"},
        {"space before colon",
         "POST /a/echo/body HTTP/1.1\r\nHost: localhost\r\nContent-Length : 4\r\n\r\nabcd"},
        {"bad chunk size",
         "POST /a/echo/body HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: "
         "chunked\r\n\r\nzz\r\nabc\r\n"
         "0\r\n\r\n"},
        {"chunk size overflow",
         "POST /a/echo/body HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: "
         "chunked\r\n\r\nfffffffffffffffff1\r\nabc\r\n0\r\n\r\n"},
    };
    for (const auto& [name, bytes] : attempts) {
        Client c(px.port());
        c.send_raw(bytes);
        // Either a 400 answer followed by a close, or a close without an answer — never a
        // 2xx, and never a connection that keeps going.
        try {
            auto r = c.read_response();
            EXPECT_EQ(r.result_int(), 400) << name << ": " << r.body();
        } catch (const boost::system::system_error& e) {
            SUCCEED() << name << ": closed without an answer (" << e.what() << ")";
        }
        EXPECT_TRUE(c.closed_by_peer())
            << name << ": connection left open after a rejected request";
    }
}

TEST_F(ProxyTest, HopByHopHeadersAreStrippedAndRouteHeadersSet) {
    auto r = route("a", "/a/", *partners->a);
    r.set_headers = {{"X-Partner", "17"}};
    r.token_profile = "partner-a";
    ProxyRunner px(listener(), {r}, ids, &tokens);
    Client c(px.port());
    auto res = c.request(http::verb::get, "/a/echo/headers", "",
                         {{"Connection", "keep-alive, X-Secret-Hop"},
                          {"X-Secret-Hop", "1"},
                          {"Keep-Alive", "timeout=5"},
                          {"TE", "trailers"},
                          {"Trailer", "X-T"},
                          {"Upgrade", "h2c"},
                          {"Proxy-Authorization", "Basic c2VjcmV0"},
                          {"Proxy-Connection", "keep-alive"},
                          {"Authorization", "Basic bG9jYWw6YXBw"},
                          {"X-Partner", "spoofed"},
                          {"X-App", "kept"}});
    ASSERT_EQ(res.result_int(), 200) << res.body();
    auto h = json::parse(res.body())["headers"];
    for (const char* gone : {"connection", "x-secret-hop", "keep-alive", "te", "trailer", "upgrade",
                             "proxy-authorization", "proxy-connection", "x-forwarded-for"})
        EXPECT_FALSE(h.contains(gone)) << gone << " reached the partner: " << h;
    EXPECT_EQ(h["authorization"], "Bearer test-token-1");
    EXPECT_EQ(h["x-partner"], "17");
    EXPECT_EQ(h["x-app"], "kept");
    EXPECT_EQ(tokens.last_thumbprint(), ids.current()->x5t_s256());
}

TEST_F(ProxyTest, HeadNoContentAndNotModifiedHaveNoBody) {
    ProxyRunner px(listener(), {route("a", "/a/", *partners->a)}, ids, nullptr);
    Client c(px.port());
    auto head = c.request(http::verb::head, "/a/echo/bytes/1000");
    EXPECT_EQ(head.result_int(), 200);
    EXPECT_EQ(head[http::field::content_length], "1000");
    auto r204 = c.request(http::verb::get, "/a/echo/status/204");
    EXPECT_EQ(r204.result_int(), 204);
    EXPECT_TRUE(r204.body().empty());
    auto r304 = c.request(http::verb::get, "/a/echo/status/304");
    EXPECT_EQ(r304.result_int(), 304);
    EXPECT_TRUE(r304.body().empty());
    // Still in sync: the next response on the same connection is the right one.
    auto after = c.request(http::verb::get, "/a/echo/bytes/10");
    EXPECT_EQ(after.result_int(), 200);
    EXPECT_EQ(after.body(), "abcdefghij");
}

TEST_F(ProxyTest, ExpectContinueSmallAndStreamedBodies) {
    ProxyRunner px(listener(), {route("a", "/a/", *partners->a)}, ids, nullptr);
    for (std::size_t size : {std::size_t{10}, std::size_t{300000}}) {
        Client c(px.port());
        std::string body(size, 'q');
        c.send_raw(
            "POST /a/echo/body HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\n"
            "Content-Length: " +
            std::to_string(size) + "\r\n\r\n");
        auto interim = c.read_response();
        ASSERT_EQ(interim.result_int(), 100) << size;
        c.send_raw(body);
        auto r = c.read_response();
        EXPECT_EQ(r.result_int(), 200) << size;
        EXPECT_EQ(r.body(), body) << size;
    }
}

TEST_F(ProxyTest, ChunkedBodiesBothWays) {
    ProxyRunner px(listener(), {route("a", "/a/", *partners->a)}, ids, nullptr);
    Client c(px.port());
    auto r = c.raw(
        "POST /a/echo/body?chunked=1 HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: "
        "chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
    EXPECT_EQ(r.result_int(), 200);
    EXPECT_EQ(r.body(), "hello world");
    auto d = c.request(http::verb::get, "/a/echo/bytes/100000?chunked=1");
    EXPECT_EQ(d.result_int(), 200);
    EXPECT_EQ(d.body().size(), 100000u);
}

// The partner's body in many tiny TLS records (7 and 13 bytes of data each): the upstream
// read path reassembles records from headers and bodies that arrive split across reads and
// segments, and the connection goes back to the pool and serves the next request.
TEST_F(ProxyTest, BodiesInTinyTlsRecordsArriveWholeOnAReusedConnection) {
    ProxyRunner px(listener(), {route("a", "/a/", *partners->a)}, ids, nullptr);
    Client c(px.port());
    auto big = c.request(http::verb::get, "/a/echo/bytes/65536?piece=7");
    EXPECT_EQ(big.result_int(), 200);
    EXPECT_TRUE(big.body() == echo_bytes(65536)) << big.body().size();
    auto chunked = c.request(http::verb::get, "/a/echo/bytes/20000?chunked=1&piece=13");
    EXPECT_EQ(chunked.result_int(), 200);
    EXPECT_TRUE(chunked.body() == echo_bytes(20000)) << chunked.body().size();
    EXPECT_EQ(c.request(http::verb::get, "/a/echo/status/200").result_int(), 200);
    // One upstream connection served all three.
    EXPECT_EQ(px.stats().routes()[0].handshakes_full + px.stats().routes()[0].handshakes_resumed,
              1u);
}

// A body the partner ends by closing the connection (no Content-Length, no chunking): with
// close_notify it is complete; a TCP close without close_notify is a truncation, and the app
// must never get what looks like a complete answer.
TEST_F(ProxyTest, ABodyEndedByCloseNotifyIsWholeAndOneCutWithoutItIsNot) {
    ProxyRunner px(listener(), {route("a", "/a/", *partners->a)}, ids, nullptr);
    {
        Client c(px.port());
        auto r = c.request(http::verb::get, "/a/echo/bytes/100000?framing=close");
        EXPECT_EQ(r.result_int(), 200);
        EXPECT_EQ(r.body().size(), 100000u);
        EXPECT_TRUE(r.body() == echo_bytes(100000));
    }
    Client c(px.port());
    c.send_raw("GET /a/echo/bytes/100000?framing=cut HTTP/1.1\r\nHost: localhost\r\n\r\n");
    try {
        auto r = c.read_response();
        // Only an error answer may be complete (when the cut came before the head went on).
        EXPECT_NE(r.result_int(), 200) << r.body().size();
    } catch (const std::exception&) {
        // the answer was cut: the proxy closed the app's connection mid-body
    }
}

TEST_F(ProxyTest, HeaderLimitsAnswer431) {
    config::Listener l = listener();
    l.max_header_count = 20;
    l.max_header_bytes = 4096;
    ProxyRunner px(l, {route("a", "/a/", *partners->a)}, ids, nullptr);
    {
        Client c(px.port());
        std::string req = "GET /a/echo/headers HTTP/1.1\r\nHost: localhost\r\n";
        for (int i = 0; i < 30; ++i) req += "X-H" + std::to_string(i) + ": v\r\n";
        auto r = c.raw(req + "\r\n");
        EXPECT_EQ(r.result_int(), 431);
        EXPECT_EQ(json::parse(r.body())["error"], "headers_too_large");
    }
    {
        Client c(px.port());
        auto r = c.raw("GET /a/echo/headers HTTP/1.1\r\nHost: localhost\r\nX-Big: " +
                       std::string(8000, 'b') + "\r\n\r\n");
        EXPECT_EQ(r.result_int(), 431);
        EXPECT_TRUE(c.closed_by_peer());
    }
}

TEST_F(ProxyTest, ThousandRequestsOverTenConnectionsUseAtMostTenHandshakes) {
    auto before = api_stats(*partners->a);
    ProxyRunner px(listener(), {route("a", "/a/", *partners->a)}, ids, nullptr);
    std::atomic<int> ok{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 10; ++t)
        threads.emplace_back([&] {
            Client c(px.port());
            for (int i = 0; i < 100; ++i)
                if (c.request(http::verb::get, "/a/echo/status/200").result_int() == 200) ++ok;
        });
    for (auto& t : threads) t.join();
    EXPECT_EQ(ok, 1000);
    auto after = api_stats(*partners->a);
    // The test's own /sandbox/stats query for `after` is one full handshake: not the proxy's.
    auto handshakes =
        (after["full_handshakes"].get<int>() - before["full_handshakes"].get<int>() - 1) +
        (after["resumed_handshakes"].get<int>() - before["resumed_handshakes"].get<int>());
    EXPECT_LE(handshakes, 10);
    EXPECT_GE(handshakes, 1);
    EXPECT_TRUE(poll_until([&] { return px.stats().routes()[0].requests == 1000u; }))
        << px.stats().routes()[0].requests;
}

TEST_F(ProxyTest, PoolRefillAfterUpstreamResetResumesTls) {
    ProxyRunner px(listener(), {route("a", "/a/", *partners->a)}, ids, nullptr);
    Client c(px.port());
    ASSERT_EQ(c.request(http::verb::get, "/a/echo/status/200").result_int(), 200);
    auto before = api_stats(*partners->a);
    // The partner resets the pooled connection: the app sees a cut response when body bytes
    // were forwarded before the reset, or a clean 502 upstream_reset when none were (the
    // reset can discard the partner's unread bytes; which one happens is a matter of timing).
    {
        Client r(px.port());
        r.send_raw("GET /a/echo/reset HTTP/1.1\r\nHost: localhost\r\n\r\n");
        try {
            auto res = r.read_response();
            EXPECT_EQ(res.result_int(), 502) << res.body();
            EXPECT_EQ(json::parse(res.body())["error"], "upstream_reset") << res.body();
        } catch (const std::exception&) {
            // a cut response: the proxy closed the app's connection mid-body
        }
    }
    // The next requests need a new upstream connection: resumed, not a full handshake.
    for (int i = 0; i < 3; ++i)
        EXPECT_EQ(c.request(http::verb::get, "/a/echo/status/200").result_int(), 200);
    auto after = api_stats(*partners->a);
    // (minus one: the test's own /sandbox/stats query for `after` is a full handshake)
    EXPECT_EQ(after["full_handshakes"].get<int>() - before["full_handshakes"].get<int>() - 1, 0);
    EXPECT_GE(after["resumed_handshakes"].get<int>() - before["resumed_handshakes"].get<int>(), 1);
    EXPECT_EQ(px.stats().routes()[0].handshakes_full, 1u);
    EXPECT_GE(px.stats().routes()[0].handshakes_resumed, 1u);
}

// 503s carry Retry-After (RFC 9110 §15.6.4).
TEST_F(ProxyTest, NoIdentityAndTokenErrorsAre503) {
    auto r = route("a", "/a/", *partners->a);
    r.token_profile = "partner-a";
    ProxyRunner px(listener(), {r}, ids, &tokens);
    Client c(px.port());
    tokens.fail = true;
    auto t = c.request(http::verb::get, "/a/echo/headers");
    EXPECT_EQ(t.result_int(), 503);
    EXPECT_EQ(json::parse(t.body())["error"], "token_unavailable");
    EXPECT_EQ(t[http::field::retry_after], "5");
    ids.clear();
    auto n = c.request(http::verb::get, "/a/echo/headers");
    EXPECT_EQ(n.result_int(), 503);
    EXPECT_EQ(json::parse(n.body())["error"], "no_identity");
    EXPECT_EQ(n[http::field::retry_after], "5");
}

TEST_F(ProxyTest, InvalidTokenIsDroppedAndRetriedOnce) {
    auto r = route("a", "/a/", *partners->a);
    r.token_profile = "partner-a";
    ProxyRunner px(listener(), {r}, ids, &tokens);
    Client c(px.port());
    // The sandbox rejects our made-up tokens with 401 invalid_token.
    auto res = c.request(http::verb::get, "/a/api/secure/data");
    EXPECT_EQ(res.result_int(), 401);
    EXPECT_EQ(tokens.invalidations, 1);
    EXPECT_EQ(tokens.gets, 2);
    EXPECT_TRUE(poll_until([&] { return px.stats().routes()[0].requests == 1u; }))
        << px.stats().routes()[0].requests;
    // A streamed (non-replayable) body is not retried: the 401 goes to the app.
    auto big = c.request(http::verb::post, "/a/api/secure/data", std::string(100000, 'x'));
    EXPECT_EQ(big.result_int(), 401);
    EXPECT_EQ(tokens.invalidations, 1);
}

TEST_F(ProxyTest, TimeoutsAnswer504AndIdleAppConnectionsAreClosed) {
    using namespace std::chrono_literals;
    auto header = route("a", "/a/", *partners->a);
    header.timeouts.response_header = 300ms;
    auto total = route("t", "/t/", *partners->a);
    total.timeouts.total = 300ms;
    auto l = listener();
    l.client_idle = 500ms;
    ProxyRunner px(l, {header, total}, ids, nullptr);

    Client c(px.port());
    for (const char* target : {"/a/echo/slow/3000", "/t/echo/slow/3000"}) {
        const auto t0 = std::chrono::steady_clock::now();
        auto res = c.request(http::verb::get, target);
        const auto took = std::chrono::steady_clock::now() - t0;
        EXPECT_EQ(res.result_int(), 504) << target;
        EXPECT_EQ(json::parse(res.body())["error"], "upstream_timeout") << res.body();
        EXPECT_GE(took, 250ms) << target;
        EXPECT_LT(took, 2500ms) << target << ": the partner's 3 s answer was waited for";
        // The app's connection stays usable.
        EXPECT_EQ(c.request(http::verb::get, "/a/echo/status/200").result_int(), 200);
    }

    // An app connection that goes quiet is closed after listener.client_idle, whether it
    // sent a request before or nothing at all.
    Client used(px.port());
    EXPECT_EQ(used.request(http::verb::get, "/a/echo/status/200").result_int(), 200);
    Client silent(px.port());
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_TRUE(used.closed_by_peer());
    EXPECT_TRUE(silent.closed_by_peer());
    EXPECT_GE(std::chrono::steady_clock::now() - t0, 300ms);
}

// Slowloris: a head trickled in byte by byte must not hold a connection forever (the idle
// timer restarts with every byte); nor may a body that stops coming.
TEST_F(ProxyTest, TrickledHeadGets408AndAStalledBodyIsGivenUp) {
    using namespace std::chrono_literals;
    auto l = listener();
    l.client_idle = 2s;
    l.request_head_timeout = 1s;
    l.body_idle = 500ms;
    ProxyRunner px(l, {route("a", "/a/", *partners->a)}, ids, nullptr);

    Client slow(px.port());
    const std::string head = "GET /a/echo/status/200 HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    const auto t0 = std::chrono::steady_clock::now();
    for (std::size_t i = 0; i < 8; ++i) {  // one byte every 200 ms: each well inside client_idle
        slow.send_raw(head.substr(i, 1));
        std::this_thread::sleep_for(200ms);  // the attacker's pace, not a readiness wait
    }
    unsigned status = 0;
    std::string error;
    try {
        auto res = slow.read_response();
        status = res.result_int();
        error = json::parse(res.body()).value("error", "");
    } catch (const std::exception& e) {
        error = e.what();
    }
    const auto took = std::chrono::steady_clock::now() - t0;
    EXPECT_EQ(status, 408u) << error;
    EXPECT_EQ(error, "request_timeout");
    EXPECT_LT(took, 1900ms) << "the trickled head was still waited for";
    EXPECT_TRUE(slow.closed_by_peer());

    // A body that stops: the connection is given up after body_idle, not client_idle.
    Client stalled(px.port());
    stalled.send_raw(
        "POST /a/echo/body HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n0123456789");
    const auto t1 = std::chrono::steady_clock::now();
    EXPECT_TRUE(stalled.closed_by_peer());
    EXPECT_LT(std::chrono::steady_clock::now() - t1, 1800ms);

    // Well-paced requests are unaffected.
    Client c(px.port());
    EXPECT_EQ(c.request(http::verb::get, "/a/echo/status/200").result_int(), 200);
}

TEST_F(ProxyTest, RotationSwitchesIdentityWithoutBreakingRequestsInFlight) {
    ProxyRunner px(listener(), {route("a", "/a/", *partners->a)}, ids, nullptr);
    Client c(px.port());
    auto first = json::parse(c.request(http::verb::get, "/a/echo/headers").body());
    // A slow request in flight while the identity changes.
    std::thread slow([&] {
        Client s(px.port());
        auto r = s.request(http::verb::get, "/a/echo/slow/400");
        EXPECT_EQ(r.result_int(), 200);
    });
    // Wait (with a deadline) until the slow request holds an upstream connection.
    const bool in_flight = poll_until([&] { return px.stats().routes()[0].pool_busy >= 1u; });
    if (!in_flight) slow.join();  // never leave a joinable thread behind an ASSERT
    ASSERT_TRUE(in_flight) << "the slow request never held an upstream connection";
    ids.publish(issue_identity(partners->ca_a, "proxy-test-host-rotated", ids.next_generation()));
    auto second = json::parse(c.request(http::verb::get, "/a/echo/headers").body());
    slow.join();
    EXPECT_NE(first["tls"]["client_certificate"], second["tls"]["client_certificate"]);
    EXPECT_NE(second["tls"]["client_certificate"].dump().find("rotated"), std::string::npos)
        << second["tls"];
}

TEST_F(ProxyTest, UnixSocketCallersAreCheckedByUid) {
    auto mine = route("mine", "/mine/", *partners->a);
    mine.allowed_uids = {::getuid()};
    auto other = route("other", "/other/", *partners->a);
    other.allowed_uids = {::getuid() + 4242};
    config::Listener l = listener();
    TempDir d("mtls-proxy-sock");
    l.unix_socket = (d / "proxy.sock").string();
    ProxyRunner px(l, {mine, other}, ids, nullptr);
    Client u(l.unix_socket);
    EXPECT_EQ(u.request(http::verb::get, "/mine/echo/status/200").result_int(), 200);
    auto o = u.request(http::verb::get, "/other/echo/status/200");
    EXPECT_EQ(o.result_int(), 403);
    Client t(px.port());
    EXPECT_EQ(t.request(http::verb::get, "/mine/echo/status/200").result_int(), 403);
}

// How many bytes the streaming test sends each way: 1 GiB, except in the asan preset (Debug,
// -O0 Asio/Beast + ASan), which moves 2-5 MiB/s here, so 2 GiB would take ten minutes:
// there 16 MiB (still 256 times the proxy's 64 KiB buffers). MTLS_PROXY_STREAM_BYTES
// overrides both.
std::uint64_t stream_test_bytes() {
    if (const char* v = std::getenv("MTLS_PROXY_STREAM_BYTES")) return std::stoull(v);
#if defined(MTLS_ASAN_RUNTIME)
    return 16ull << 20;
#else
    return 1ull << 30;
#endif
}

// 1 GiB down (/echo/bytes) and 1 GiB up (/echo/sink, which counts what arrived), then a
// body echoed back while it is still being sent (both directions at once; 1/16 of the
// size), all with flat memory.
TEST_F(ProxyTest, GiBStreamedEachWayWithFlatMemory) {
    const std::uint64_t size = stream_test_bytes();
    const std::uint64_t echo_size = size / 16;
    ProxyRunner px(listener(), {route("a", "/a/", *partners->a)}, ids, nullptr);
    const long rss_before = proc_status_kib("VmRSS");
    // Reads one response, counting its body without keeping it.
    auto read_streamed = [](net::asio::ip::tcp::socket& s) {
        net::beast::flat_buffer buf;
        http::response_parser<http::buffer_body> p;
        p.body_limit(std::numeric_limits<std::uint64_t>::max());
        std::vector<char> chunk(256 * 1024);
        http::read_header(s, buf, p);
        std::uint64_t got = 0;
        while (!p.is_done()) {
            p.get().body().data = chunk.data();
            p.get().body().size = chunk.size();
            net::error_code ec;
            http::read(s, buf, p, ec);
            if (ec && ec != http::error::need_buffer) throw boost::system::system_error(ec);
            got += chunk.size() - p.get().body().size;
        }
        return std::make_pair(p.get().result_int(), got);
    };
    // Sends a request head and `n` body bytes from another thread.
    auto upload = [](Client& c, const std::string& target, std::uint64_t n) {
        return std::thread([&c, target, n] {
            c.send_raw("POST " + target + " HTTP/1.1\r\nHost: localhost\r\nContent-Length: " +
                       std::to_string(n) + "\r\n\r\n");
            std::string block(256 * 1024, 'u');
            for (std::uint64_t sent = 0; sent < n; sent += block.size())
                net::asio::write(
                    c.tcp(), net::asio::buffer(block.data(),
                                               std::min<std::uint64_t>(block.size(), n - sent)));
        });
    };
    auto mib_per_s = [](std::uint64_t bytes, std::chrono::steady_clock::time_point t0) {
        std::chrono::duration<double> d = std::chrono::steady_clock::now() - t0;
        return static_cast<int>(static_cast<double>(bytes) / (1 << 20) / d.count());
    };
    std::uint64_t sink_answer_bytes = 0;
    {  // download
        auto t0 = std::chrono::steady_clock::now();
        Client c(px.port());
        c.send_raw("GET /a/echo/bytes/" + std::to_string(size) +
                   " HTTP/1.1\r\nHost: localhost\r\n\r\n");
        auto [status, got] = read_streamed(c.tcp());
        EXPECT_EQ(status, 200u);
        EXPECT_EQ(got, size);
        RecordProperty("download_MiB_per_s", mib_per_s(size, t0));
    }
    {  // upload: the partner says how much arrived
        auto t0 = std::chrono::steady_clock::now();
        Client c(px.port());
        std::thread writer = upload(c, "/a/echo/sink", size);
        auto r = c.read_response();
        writer.join();
        EXPECT_EQ(r.result_int(), 200u) << r.body();
        EXPECT_EQ(json::parse(r.body())["bytes"].get<std::uint64_t>(), size) << r.body();
        sink_answer_bytes = r.body().size();
        RecordProperty("upload_MiB_per_s", mib_per_s(size, t0));
    }
    {  // echoed back while it is sent
        auto t0 = std::chrono::steady_clock::now();
        Client c(px.port());
        std::thread writer = upload(c, "/a/echo/body", echo_size);
        auto [status, got] = read_streamed(c.tcp());
        writer.join();
        EXPECT_EQ(status, 200u);
        EXPECT_EQ(got, echo_size);
        RecordProperty("echo_MiB_per_s_each_way", mib_per_s(echo_size, t0));
    }
    const long hwm = proc_status_kib("VmHWM");
#if defined(MTLS_ASAN_RUNTIME)
    // Not under ASan: its quarantine keeps up to 256 MiB of freed blocks resident (Asio
    // allocates each composed operation's state), so the peak says nothing about the proxy.
    (void)hwm;
    (void)rss_before;
#else
    EXPECT_LT(hwm - rss_before, 64 * 1024) << "peak RSS grew by " << (hwm - rss_before) << " KiB";
#endif
    const std::uint64_t out = size + sink_answer_bytes + echo_size;
    EXPECT_TRUE(poll_until([&] { return px.stats().routes()[0].bytes_out == out; }))
        << px.stats().routes()[0].bytes_out << " != " << out;
    EXPECT_EQ(px.stats().routes()[0].bytes_in, size + echo_size);
}

TEST_F(ProxyTest, NonLoopbackListenerIsRefused) {
    config::Listener l;
    l.addresses = {"0.0.0.0:0"};
    net::asio::io_context io;
    proxy::Proxy p(io, l, {route("a", "/a/", *partners->a)}, ids, nullptr);
    try {
        p.start();
        FAIL() << "bound a non-loopback address";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find("allow_non_loopback"), std::string::npos) << e.what();
    }
}

}  // namespace
