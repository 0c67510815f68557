#include "agent/daemon/token_warmup.hpp"

#include "agent/token/errors.hpp"
#include "common/log.hpp"

#include <algorithm>

namespace mtls::daemon {

namespace asio = net::asio;

TokenWarmup::TokenWarmup(asio::io_context& io, token::TokenCache& cache,
                         std::vector<std::string> profiles, identity::IdentityStore& identities)
    : io_(io), cache_(cache), profiles_(std::move(profiles)), identities_(identities), timer_(io) {
    // Told on the publishing thread (the renewer's): the work moves to the io thread.
    sub_ = identities_.subscribe(
        [this](const identity::IdentityPtr& now, const identity::IdentityPtr& before) {
            if (!now || now == before) return;
            asio::post(io_, [this, now] { kick(now); });
        });
}

void TokenWarmup::start() {
    if (auto id = identities_.current()) kick(std::move(id));
}

void TokenWarmup::set_profiles(std::vector<std::string> profiles) {
    profiles_ = std::move(profiles);
    if (auto id = identities_.current()) kick(std::move(id));
}

void TokenWarmup::stop() {
    stopped_ = true;
    ++epoch_;
    sub_.reset();
    timer_.cancel();
}

void TokenWarmup::kick(identity::IdentityPtr id) {
    if (stopped_ || profiles_.empty()) return;
    if (identities_.current() != id) return;  // already replaced: its own kick follows
    const auto epoch = ++epoch_;
    timer_.cancel();  // a previous round waiting to retry ends
    asio::co_spawn(io_, run(epoch, std::move(id)), asio::detached);
}

net::awaitable<void> TokenWarmup::run(std::uint64_t epoch, identity::IdentityPtr id) {
    std::chrono::milliseconds delay(1000);
    for (;;) {
        bool all = true;
        const auto profiles = profiles_;  // set_profiles() may replace them while we wait
        for (const auto& profile : profiles) {
            if (stopped_ || epoch != epoch_) co_return;
            auto r = co_await cache_.get(profile, id);
            if (const auto* err = std::get_if<token::TokenError>(&r)) {
                if (err->code == token::errc::identity_rotated ||
                    err->code == token::errc::shutting_down ||
                    err->code == token::errc::no_identity)
                    co_return;
                all = false;
            }
        }
        if (all || stopped_ || epoch != epoch_) co_return;
        log::debug("oauth.token_prefetch_retry",
                   {{"retry_in_ms", static_cast<long long>(delay.count())}});
        timer_.expires_after(delay);
        net::error_code ec;
        co_await timer_.async_wait(net::use_ec(ec));
        delay = std::min<std::chrono::milliseconds>(delay * 2, std::chrono::seconds(60));
    }
}

}  // namespace mtls::daemon
