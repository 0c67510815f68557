// Access tokens fetched ahead of need: one for every OAuth profile as soon as an identity is
// there (at start) and again whenever another one is published (rotation, the renewer's own
// renewals, re-enrollment), in the background on the io thread. So the status reports a
// token problem (the AS down, the client not registered) before any app call needs a token,
// and shows "not yet requested" only before that first attempt. A profile whose request
// failed is asked again (1 s doubling to 60 s; the cache's own backoff applies too) until
// every profile has a token or the identity changes.
#pragma once

#include "agent/identity/identity_store.hpp"
#include "agent/net/asio.hpp"
#include "agent/token/token_cache.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace mtls::daemon {

class TokenWarmup {
  public:
    // Subscribes to `identities`; declare it after the io_context (its timer goes first).
    TokenWarmup(net::asio::io_context& io, token::TokenCache& cache,
                std::vector<std::string> profiles, identity::IdentityStore& identities);
    // On the io thread: starts fetching for the current identity, if any.
    void start();
    // On the io thread: fetch for these profiles from now on (a reload changed [oauth]).
    void set_profiles(std::vector<std::string> profiles);
    // On the io thread: no more fetching.
    void stop();

  private:
    void kick(identity::IdentityPtr id);  // io thread
    net::awaitable<void> run(std::uint64_t epoch, identity::IdentityPtr id);

    net::asio::io_context& io_;
    token::TokenCache& cache_;
    std::vector<std::string> profiles_;
    identity::IdentityStore& identities_;
    net::asio::steady_timer timer_;
    std::uint64_t epoch_ = 0;
    bool stopped_ = false;
    identity::IdentityStore::Subscription sub_;
};

}  // namespace mtls::daemon
