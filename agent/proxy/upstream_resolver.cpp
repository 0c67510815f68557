#include "agent/proxy/upstream_resolver.hpp"

#include <string>

namespace mtls::proxy {

net::awaitable<UpstreamResolver::Results> UpstreamResolver::resolve(net::error_code& ec) {
    ec = {};
    std::optional<Results> fresh;
    {
        std::lock_guard lk(mu_);
        if (cached_ && Clock::now() < expires_) fresh = cached_;
    }
    if (fresh) co_return *fresh;
    net::tcp::resolver resolver(co_await net::asio::this_coro::executor);
    ++resolutions_;
    auto results = co_await resolver.async_resolve(target_.host, std::to_string(target_.port),
                                                   net::use_ec(ec));
    if (!ec && results.empty()) ec = net::asio::error::host_not_found;
    if (ec) {
        forget();
        co_return Results{};
    }
    if (ttl_.count() > 0) {
        std::lock_guard lk(mu_);
        cached_ = results;
        expires_ = Clock::now() + ttl_;
    }
    co_return results;
}

}  // namespace mtls::proxy
