// Upstream TLS resumption and the per-connection buffers of the data path, against a
// partner-sandbox whose TLS 1.3 tickets resume once (--api-single-use-tickets: a client
// that offers one ticket twice gets a full handshake the second time) and that closes the
// connection after every answer (?close=1), so every request needs a new upstream
// connection.
#include "tests/proxy/proxy_fixture.hpp"
#include "tests/support/poll.hpp"
#include "tests/support/sandbox_process.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <thread>

using namespace mtls;
using namespace mtls::proxytest;
using mtls::test::poll_until;
using mtls::test::SandboxProcess;
using mtls::test::TempDir;

namespace {

struct SingleUsePartner {
    TempDir dir{"mtls-resumption-test"};
    std::unique_ptr<SandboxProcess> p;
};
SingleUsePartner* single_use = nullptr;

class ResumptionTest : public ::testing::Test {
  protected:
    static void SetUpTestSuite() {
        single_use = new SingleUsePartner;
        single_use->p = std::make_unique<SandboxProcess>(
            single_use->dir.path(), std::vector<std::string>{"--api-single-use-tickets"});
    }
    static void TearDownTestSuite() {
        delete single_use;
        single_use = nullptr;
    }
    void SetUp() override {
        ids.publish(issue_identity(single_use->dir.path() / "ca", "resumption-test-host",
                                   ids.next_generation()));
    }
    static config::Route route() {
        config::Route r;
        r.name = "a";
        r.path_prefix = "/a/";
        r.upstream = single_use->p->api_url() + "/";
        r.ca_file = single_use->p->ca_bundle();
        r.pool_max = 64;
        return r;
    }
    static config::Listener listener() {
        config::Listener l;
        l.addresses = {"127.0.0.1:0"};
        return l;
    }
    // The partner's handshake counts (full, resumed) for the API.
    static std::pair<int, int> partner_handshakes() {
        auto s = single_use->p->stats()["services"]["api"];
        return {s["full_handshakes"].get<int>(), s["resumed_handshakes"].get<int>()};
    }
    identity::IdentityStore ids;
};

TEST_F(ResumptionTest, SequentialNewConnectionsResumeAfterTheFirst) {
    ProxyRunner px(listener(), {route()}, ids, nullptr);
    auto [full0, resumed0] = partner_handshakes();
    constexpr int kRequests = 200;
    Client c(px.port());
    for (int i = 0; i < kRequests; ++i)
        ASSERT_EQ(c.request(http::verb::get, "/a/echo/status/200?close=1").result_int(), 200);
    ASSERT_TRUE(poll_until([&] { return px.stats().routes()[0].requests == kRequests; }));
    const auto& rs = px.stats().routes()[0];
    EXPECT_EQ(rs.handshakes_full + rs.handshakes_resumed, static_cast<unsigned>(kRequests));
    // Only the first connection has no ticket to offer: >= 99 % resumed.
    EXPECT_EQ(rs.handshakes_full, 1u);
    EXPECT_GE(rs.handshakes_resumed * 100, 99u * kRequests) << rs.handshakes_resumed;
    // The partner agrees (minus one full handshake: the test's own stats query).
    auto [full1, resumed1] = partner_handshakes();
    EXPECT_EQ(full1 - full0 - 1, 1);
    EXPECT_EQ(resumed1 - resumed0, kRequests - 1);
}

TEST_F(ResumptionTest, ConcurrentNewConnectionsNeverOfferOneTicketTwice) {
    ProxyRunner px(listener(), {route()}, ids, nullptr);
    auto [full0, resumed0] = partner_handshakes();
    constexpr int kThreads = 8, kEach = 60;
    std::atomic<int> ok{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t)
        threads.emplace_back([&] {
            Client c(px.port());
            for (int i = 0; i < kEach; ++i)
                if (c.request(http::verb::get, "/a/echo/status/200?close=1").result_int() == 200)
                    ++ok;
        });
    for (auto& t : threads) t.join();
    ASSERT_EQ(ok, kThreads * kEach);
    ASSERT_TRUE(poll_until([&] { return px.stats().routes()[0].requests == kThreads * kEach; }));
    const auto& rs = px.stats().routes()[0];
    // A full handshake only while no ticket is at hand: at most one per concurrent
    // connection at the start. A ticket offered twice would be refused by this partner and
    // show here as one more full handshake each time.
    EXPECT_LE(rs.handshakes_full, static_cast<unsigned>(kThreads));
    EXPECT_GE(rs.handshakes_resumed * 100, 98u * kThreads * kEach) << rs.handshakes_resumed;
    // The partner counts the same (minus one full handshake: the test's own stats query).
    auto [full1, resumed1] = partner_handshakes();
    EXPECT_EQ(resumed1 - resumed0, static_cast<int>(rs.handshakes_resumed));
    EXPECT_EQ(full1 - full0 - 1, static_cast<int>(rs.handshakes_full));
}

// Between requests a keep-alive app connection holds no per-request buffer (read buffer,
// head text, response parser): measured by what the sessions report, not by RSS.
TEST_F(ResumptionTest, IdleKeepAliveConnectionsHoldNoBuffers) {
    ProxyRunner px(listener(), {route()}, ids, nullptr);
    constexpr int kClients = 4;
    std::vector<std::unique_ptr<Client>> clients;
    for (int i = 0; i < kClients; ++i) {
        clients.push_back(std::make_unique<Client>(px.port()));
        // A small answer, a 64 KiB one (the largest body buffer) and a request with a body.
        ASSERT_EQ(clients.back()->request(http::verb::get, "/a/echo/status/200").result_int(), 200);
        auto big = clients.back()->request(http::verb::get, "/a/echo/bytes/65536");
        ASSERT_EQ(big.result_int(), 200);
        EXPECT_EQ(big.body().size(), 65536u);
        ASSERT_EQ(clients.back()
                      ->request(http::verb::post, "/a/echo/sink", std::string(10000, 'x'))
                      .result_int(),
                  200);
    }
    // All of them wait for their next request (the count is published after the bytes).
    ASSERT_TRUE(poll_until([&] { return px.stats().connections_idle == kClients; }))
        << px.stats().connections_idle;
    EXPECT_EQ(px.stats().idle_buffer_bytes, 0u);
    // The requests took their state (read buffer, parsers) from the pool of those given
    // back: a new one only while every earlier one was in use, i.e. at most one per
    // connection.
    EXPECT_GE(px.stats().request_states_reused, 3u * kClients - kClients);
    // Likewise the idle waits' operations (one wait before each connection's first request
    // and one after each request): new memory only for a wait while every earlier block
    // was held by another connection's wait, i.e. at most one per connection.
    // (Polled: a connection counts as idle just before its wait takes the memory.)
    EXPECT_TRUE(poll_until([&] { return px.stats().wait_ops_reused >= 4u * kClients - kClients; }))
        << px.stats().wait_ops_reused;
    // And they still work, on reused state again.
    for (auto& c : clients)
        EXPECT_EQ(c->request(http::verb::get, "/a/echo/status/204").result_int(), 204);
    EXPECT_GE(px.stats().request_states_reused, 4u * kClients - kClients);
    EXPECT_TRUE(poll_until([&] { return px.stats().wait_ops_reused >= 5u * kClients - kClients; }))
        << px.stats().wait_ops_reused;
}

// Readiness is a hint. Asio's reactor hands a readiness event to whatever wait is pending on
// the socket when it gets to the event, and a woken idle connection is served by a coroutine
// that runs later (posted): an event taken from epoll in between, while the bytes it
// announces are still unread, is queued behind that serving. When the request is answered
// without the proxy waiting for anything on the way — a 404 from the proxy itself here, a
// partner's answer that is already in the socket when the session reads it just the same —
// the event reaches the next idle wait, with nothing to read: the connection must wait
// again, idle, not for a head in a coroutine holding a request state. The proxy runs on this
// thread (one worker), driven one handler at a time where the order matters.
TEST_F(ResumptionTest, AnIdleWaitWokenWithNothingToReadWaitsAgain) {
    net::asio::io_context io;
    config::Listener l = listener();
    l.workers = 1;
    proxy::Proxy px(io, l, {route()}, ids, nullptr);
    px.start();
    const auto& st = px.stats();
    auto pump_until = [&](auto pred) {
        return poll_until([&] {
            io.poll();
            return pred();
        });
    };
    Client c(px.tcp_endpoints().front().port());
    c.tcp().set_option(net::tcp::no_delay(true));  // each piece goes out when it is written
    // A request to the partner first (TLS): the coroutine that served it parks, and the
    // connection is handed to it when it wakes next.
    c.send_raw("GET /a/echo/status/200 HTTP/1.1\r\nHost: localhost\r\n\r\n");
    ASSERT_TRUE(
        pump_until([&] { return st.routes()[0].requests == 1 && st.connections_idle == 1; }));
    EXPECT_EQ(c.read_response().result_int(), 200);
    while (io.poll() > 0) {
    }
    const std::uint64_t empty_before = st.idle_wakeups_empty;

    // The head's first piece wakes the idle wait: one handler at a time until it left the
    // wait; the serving it handed the connection to is queued, not run yet.
    c.send_raw("GET /nowhere HTTP/1.1\r\n");
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (st.connections_idle != 0 && std::chrono::steady_clock::now() < until) io.poll_one();
    ASSERT_EQ(st.connections_idle, 0u);
    // The rest arrives before the serving runs: epoll, asked first, reports the socket
    // readable again, an event queued behind the serving. The serving reads both pieces,
    // answers 404 without waiting, waits idle again — and the event ends that wait.
    c.send_raw("Host: localhost\r\n\r\n");
    EXPECT_TRUE(pump_until([&] { return st.idle_wakeups_empty == empty_before + 1; }))
        << st.idle_wakeups_empty - empty_before;
    EXPECT_TRUE(pump_until([&] { return st.connections_idle == 1; })) << st.connections_idle;
    EXPECT_EQ(st.idle_buffer_bytes, 0u);
    EXPECT_EQ(c.read_response().result_int(), 404);

    // The connection still serves.
    c.send_raw("GET /a/echo/status/204 HTTP/1.1\r\nHost: localhost\r\n\r\n");
    ASSERT_TRUE(
        pump_until([&] { return st.routes()[0].requests == 2 && st.connections_idle == 1; }));
    EXPECT_EQ(c.read_response().result_int(), 204);
    px.stop();
    io.poll();
}

// Requests sent back to back in one write (pipelined): the bytes of the second arrive with
// the first and wait in the request state the connection keeps, so the second is answered
// without an idle wait, in order; then the connection is idle and holds nothing.
TEST_F(ResumptionTest, PipelinedRequestsAreAnsweredInOrderThenTheConnectionIdles) {
    ProxyRunner px(listener(), {route()}, ids, nullptr);
    Client c(px.port());
    c.send_raw(
        "GET /a/echo/status/201 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        "GET /a/echo/status/202 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        "GET /a/echo/status/204 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    EXPECT_EQ(c.read_response().result_int(), 201);
    EXPECT_EQ(c.read_response().result_int(), 202);
    EXPECT_EQ(c.read_response().result_int(), 204);
    ASSERT_TRUE(poll_until([&] { return px.stats().connections_idle == 1; }))
        << px.stats().connections_idle;
    EXPECT_EQ(px.stats().idle_buffer_bytes, 0u);
    EXPECT_EQ(c.request(http::verb::get, "/a/echo/status/200").result_int(), 200);
}

}  // namespace
