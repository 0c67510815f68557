// The graceful stop of app connections (agent/proxy/drain.hpp), against a partner-sandbox.
// The proxy runs on the test's thread (one worker) and the test steps its event loop, so
// "the app's bytes arrived, the proxy has not read them yet" is a state the test holds
// while it starts the drain, not a race it hopes to win.
#include "tests/proxy/proxy_fixture.hpp"
#include "tests/support/poll.hpp"
#include "tests/support/sandbox_process.hpp"

#include <gtest/gtest.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>

using namespace mtls;
using namespace mtls::proxytest;
using mtls::test::poll_until;
using mtls::test::SandboxProcess;
using mtls::test::TempDir;

namespace {

class DrainTest : public ::testing::Test {
  protected:
    static void SetUpTestSuite() {
        dir_ = new TempDir("mtls-drain-test");
        partner_ = new SandboxProcess(dir_->path());
    }
    static void TearDownTestSuite() {
        delete partner_;
        delete dir_;
        partner_ = nullptr;
        dir_ = nullptr;
    }
    void SetUp() override {
        ids.publish(issue_identity(dir_->path() / "ca", "drain-test-host", ids.next_generation()));
        config::Route r;
        r.name = "a";
        r.path_prefix = "/a/";
        r.upstream = partner_->api_url() + "/";
        r.ca_file = partner_->ca_bundle();
        config::Listener l;
        l.addresses = {"127.0.0.1:0"};
        l.workers = 1;
        px = std::make_unique<proxy::Proxy>(io, l, std::vector<config::Route>{r}, ids, nullptr);
        px->start();
    }
    void TearDown() override {
        px->stop();
        io.poll();
    }
    // Runs the proxy's handlers until pred() holds (false: it did not within the deadline).
    template <class Pred>
    bool pump_until(Pred pred) {
        return poll_until([&] {
            io.poll();
            return pred();
        });
    }
    // A client whose first request was answered and whose connection is idle again.
    std::unique_ptr<Client> idle_client() {
        auto c = std::make_unique<Client>(px->tcp_endpoints().front().port());
        c->send_raw("GET /a/echo/status/200 HTTP/1.1\r\nHost: localhost\r\n\r\n");
        const auto& st = px->stats();
        EXPECT_TRUE(pump_until([&] { return st.connections_idle == 1; }));
        EXPECT_EQ(c->read_response().result_int(), 200);
        while (io.poll() > 0) {
        }
        return c;
    }

    static TempDir* dir_;
    static SandboxProcess* partner_;
    identity::IdentityStore ids;
    net::asio::io_context io;
    std::unique_ptr<proxy::Proxy> px;
};
TempDir* DrainTest::dir_ = nullptr;
SandboxProcess* DrainTest::partner_ = nullptr;

// An idle keep-alive connection whose app has just sent its next request: at a graceful stop
// that request is served (to the partner and back), with Connection: close, instead of the
// app finding its connection closed under a request it cannot know was never read.
TEST_F(DrainTest, ARequestThatArrivedBeforeTheStopIsServedThenTheConnectionCloses) {
    auto c = idle_client();
    const auto& st = px->stats();
    const std::uint64_t requests_before = st.routes()[0].requests;
    c->send_raw(
        "POST /a/echo/headers HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello");
    // All of it acknowledged by the proxy's kernel, so in its socket's buffer; the proxy has
    // not run since.
    ASSERT_TRUE(poll_until([&] {
        int unacked = -1;
        return ::ioctl(c->tcp().native_handle(), SIOCOUTQ, &unacked) == 0 && unacked == 0;
    }));
    bool emptied = false;
    EXPECT_EQ(px->begin_drain([&] { emptied = true; }), 1u);  // counted as in flight
    ASSERT_TRUE(pump_until([&] { return emptied; })) << st.connections_open;
    EXPECT_EQ(st.routes()[0].requests, requests_before + 1);
    auto res = c->read_response();
    EXPECT_EQ(res.result_int(), 200);
    EXPECT_NE(res.body().find("\"body_bytes\":5"), std::string::npos) << res.body();
    EXPECT_FALSE(res.keep_alive());  // Connection: close
    // Then the proxy closed the connection.
    char byte = 0;
    net::error_code ec;
    c->tcp().read_some(net::asio::buffer(&byte, 1), ec);
    EXPECT_EQ(ec, net::asio::error::eof) << ec.message();
}

// An idle connection with nothing sent is cut at once: the drain does not wait for it.
TEST_F(DrainTest, AnIdleConnectionWithNothingSentIsCutAtOnce) {
    auto c = idle_client();
    bool emptied = false;
    EXPECT_EQ(px->begin_drain([&] { emptied = true; }), 0u);
    ASSERT_TRUE(pump_until([&] { return emptied; }));
    char byte = 0;
    net::error_code ec;
    c->tcp().read_some(net::asio::buffer(&byte, 1), ec);
    EXPECT_TRUE(ec == net::asio::error::eof || ec == net::asio::error::connection_reset)
        << ec.message();
}

}  // namespace
