// The proxy with several workers, in this process (what the tsan preset runs under
// ThreadSanitizer: scripts/test.sh): keep-alive connections spread over three workers send
// requests through the real TokenCache (one token request for all of them: single flight
// across threads) to the partner sandbox, while the main thread rotates the identity,
// reloads the routes, cuts a burnt identity and finally drains and stops every worker.
#include "agent/token/token_cache.hpp"
#include "tests/proxy/proxy_fixture.hpp"
#include "tests/support/poll.hpp"
#include "tests/support/sandbox_process.hpp"
#include "tests/support/temp_dir.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <iostream>
#include <thread>
#include <vector>

namespace {

using namespace mtls;
using namespace std::chrono_literals;
using mtls::test::poll_until;
using mtls::test::SandboxProcess;
using mtls::test::TempDir;

constexpr std::size_t kWorkers = 3;
constexpr int kConnections = 6;

struct WorkersWorld {
    TempDir dir{"mtls-workers-test"};
    std::unique_ptr<SandboxProcess> sandbox;
    std::filesystem::path ca_dir;
    identity::IdentityStore ids;
    std::unique_ptr<token::TokenCache> tokens;

    WorkersWorld() {
        std::filesystem::create_directories(dir / "sb");
        sandbox = std::make_unique<SandboxProcess>(dir / "sb");
        ca_dir = dir / "sb" / "ca";
        config::OAuth oauth;
        oauth.issuer = sandbox->as_issuer();
        oauth.ca_file = sandbox->ca_bundle();
        config::TokenProfile p;
        p.name = "partner";
        p.client_id = "workers-test";
        oauth.profiles = {p};
        tokens = std::make_unique<token::TokenCache>(oauth);
        publish();
    }
    void publish() {
        ids.publish(proxytest::issue_identity(ca_dir, "workers-test", ids.next_generation()));
    }
    config::Route route(const std::string& name, const std::string& prefix) const {
        config::Route r;
        r.name = name;
        r.path_prefix = prefix;
        r.upstream = sandbox->api_url() + "/";
        r.ca_file = sandbox->ca_bundle();
        r.token_profile = "partner";
        return r;
    }
    static config::Listener listener() {
        config::Listener l;
        l.addresses = {"127.0.0.1:0"};
        l.workers = kWorkers;
        return l;
    }
    std::uint64_t token_requests() const {
        return sandbox->stats()["token_requests"].get<std::uint64_t>();
    }
};

// Keep-alive clients, one thread each, counting answers until told to stop. (Not
// tests/support's HttpLoad: that is built without BOOST_BEAST_USE_STD_STRING_VIEW, this
// binary links mtls_agent_core built with it — Beast's inline functions would differ.)
struct Clients {
    std::atomic<bool> stop{false};
    std::atomic<std::uint64_t> ok{0}, failed{0};
    std::vector<std::thread> threads;
    std::mutex mu;
    std::string first_failure;

    Clients(std::uint16_t port, const std::string& target, int n) {
        for (int i = 0; i < n; ++i)
            threads.emplace_back([this, port, target] {
                try {
                    proxytest::Client c(port);
                    while (!stop) {
                        auto res = c.request(proxytest::http::verb::get, target);
                        if (res.result_int() == 200) {
                            ++ok;
                        } else {
                            note("status " + std::to_string(res.result_int()) + ": " + res.body());
                        }
                    }
                } catch (const std::exception& e) {
                    note(e.what());
                }
            });
    }
    void note(const std::string& why) {
        ++failed;
        std::lock_guard lk(mu);
        if (first_failure.empty()) first_failure = why;
    }
    bool more(std::uint64_t n) {
        const auto from = ok.load();
        return poll_until([&] { return ok >= from + n || failed > 0; }, 30s) && failed == 0;
    }
    void join() {
        stop = true;
        for (auto& t : threads) t.join();
    }
    ~Clients() {
        if (!stop) join();
    }
};

TEST(ProxyWorkers, ConnectionsOnEveryWorkerThroughRotationReloadCutAndDrain) {
    WorkersWorld w;
    // The first requests all find no token: the AS answers slowly, so they wait together.
    w.sandbox->set_mode("as=slow&delay_ms=500");
    const auto tokens_before = w.token_requests();
    proxytest::ProxyRunner px(WorkersWorld::listener(), {w.route("partner", "/partner/")}, w.ids,
                              w.tokens.get());
    ASSERT_EQ(px.stats().workers, kWorkers);

    Clients clients(px.port(), "/partner/api/secure/data", kConnections);
    ASSERT_TRUE(clients.more(60)) << clients.first_failure;
    EXPECT_EQ(w.token_requests() - tokens_before, 1u)
        << "one token request for " << kConnections << " connections on " << kWorkers << " workers";
    w.sandbox->set_mode("as=normal");
    for (std::size_t i = 0; i < kWorkers; ++i) {
        EXPECT_GE(px.stats().worker_accepted[i].load(), 1u) << "worker " << i;
        EXPECT_GE(px.stats().worker_open[i].load(), 1u) << "worker " << i;
    }

    // Rotation: every worker's pool builds a context for the new identity.
    w.publish();
    ASSERT_TRUE(clients.more(60)) << clients.first_failure;

    // Reload: a route added, the busy one kept (its pools and counters stay on every worker).
    proxy::RouteChanges changes;
    px.on_io([&](proxy::Proxy& p) {
        auto next = p.prepare_routes({w.route("partner", "/partner/"), w.route("more", "/more/")});
        changes = next.changes();
        p.commit_routes(std::move(next));
    });
    EXPECT_EQ(changes.added, std::vector<std::string>{"more"});
    EXPECT_EQ(changes.kept, std::vector<std::string>{"partner"});
    ASSERT_TRUE(clients.more(60)) << clients.first_failure;
    clients.join();
    EXPECT_EQ(clients.failed, 0u) << clients.first_failure;

    // A burnt identity: the pools of every worker close its connections (none busy once the
    // sessions have given back their leases, which may be just after the last answer).
    ASSERT_TRUE(poll_until(
        [&] {
            for (const auto& r : px.stats().routes())
                if (r.pool_busy != 0) return false;
            return true;
        },
        10s));
    std::size_t cut = 99;
    px.on_io([&](proxy::Proxy& p) { cut = p.cut_identity(w.ids.current()->generation()); });
    EXPECT_EQ(cut, 0u);

    // Drain with one idle connection on each worker: begin_drain cuts them; on_empty runs
    // once, after the last worker's last connection ended.
    std::vector<std::unique_ptr<proxytest::Client>> idle;
    for (std::size_t i = 0; i < kWorkers; ++i) {
        idle.push_back(std::make_unique<proxytest::Client>(px.port()));
        EXPECT_EQ(
            idle.back()->request(proxytest::http::verb::get, "/more/echo/status/204").result_int(),
            204u);
    }
    ASSERT_TRUE(poll_until([&] { return px.stats().connections_open == kWorkers; }, 10s));
    std::atomic<int> emptied{0};
    px.on_io([&](proxy::Proxy& p) {
        p.stop_accepting();
        p.begin_drain([&] { ++emptied; });
    });
    EXPECT_TRUE(poll_until([&] { return emptied == 1; }, 10s));
    for (auto& c : idle) EXPECT_TRUE(c->closed_by_peer());
    EXPECT_EQ(px.stats().connections_open, 0u);
    EXPECT_EQ(emptied, 1);
    std::cout << "[ figures  ] " << kConnections << " connections on " << kWorkers
              << " workers: " << clients.ok << " requests; per worker:";
    for (std::size_t i = 0; i < kWorkers; ++i)
        std::cout << " " << px.stats().worker_accepted[i].load();
    std::cout << " connections\n";
}

}  // namespace
