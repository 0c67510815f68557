// The upstream resolver's cache: a route's partner host is resolved once per dns_ttl, again
// after forget() (a failed connection), and for every connection with dns_ttl = 0.
#include "agent/proxy/upstream_resolver.hpp"

#include <gtest/gtest.h>

#include <thread>

using namespace mtls;
using mtls::proxy::UpstreamResolver;
using namespace std::chrono_literals;

namespace {

proxy::UpstreamTarget localhost_target() {
    proxy::UpstreamTarget t;
    t.host = "localhost";
    t.port = 8443;
    t.authority = "localhost:8443";
    return t;
}

// Resolves `times` times on a fresh io_context; every answer must hold an address.
void resolve_times(UpstreamResolver& r, int times) {
    net::asio::io_context io;
    net::asio::co_spawn(
        io,
        [&]() -> net::awaitable<void> {
            for (int i = 0; i < times; ++i) {
                net::error_code ec;
                auto results = co_await r.resolve(ec);
                EXPECT_FALSE(ec) << ec.message();
                EXPECT_FALSE(results.empty());
                if (!results.empty()) {
                    EXPECT_EQ(results.begin()->endpoint().port(), 8443);
                }
            }
        },
        net::asio::detached);
    io.run();
}

TEST(UpstreamResolver, ResolvesOncePerTtlAndAgainAfterForget) {
    UpstreamResolver r(localhost_target(), 30s);
    resolve_times(r, 5);
    EXPECT_EQ(r.resolutions(), 1u);
    r.forget();
    resolve_times(r, 3);
    EXPECT_EQ(r.resolutions(), 2u);
}

TEST(UpstreamResolver, ZeroTtlResolvesEveryTime) {
    UpstreamResolver r(localhost_target(), 0ms);
    resolve_times(r, 3);
    EXPECT_EQ(r.resolutions(), 3u);
}

TEST(UpstreamResolver, AnExpiredEntryIsResolvedAgain) {
    UpstreamResolver r(localhost_target(), 1ms);
    resolve_times(r, 1);
    // Not a readiness wait: the 1 ms TTL must pass, which only time does.
    std::this_thread::sleep_for(5ms);
    resolve_times(r, 1);
    EXPECT_EQ(r.resolutions(), 2u);
}

}  // namespace
