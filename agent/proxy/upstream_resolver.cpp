#include "agent/proxy/upstream_resolver.hpp"

#include <string>

namespace mtls::proxy {

net::awaitable<UpstreamResolver::Results> UpstreamResolver::resolve(net::error_code& ec) {
    ec = {};
    if (cached_ && Clock::now() < expires_) co_return *cached_;
    net::tcp::resolver resolver(co_await net::asio::this_coro::executor);
    ++resolutions_;
    auto results = co_await resolver.async_resolve(target_.host, std::to_string(target_.port),
                                                   net::use_ec(ec));
    if (!ec && results.empty()) ec = net::asio::error::host_not_found;
    if (ec) {
        cached_.reset();
        co_return Results{};
    }
    if (ttl_.count() > 0) {
        cached_ = results;
        expires_ = Clock::now() + ttl_;
    }
    co_return results;
}

}  // namespace mtls::proxy
