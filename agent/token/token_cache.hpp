// TokenCache: the TokenSource of the daemon — OAuth 2.0 client credentials over mutual TLS
// (RFC 8705), one cache entry per (token profile, certificate thumbprint).
//
// - get() answers from the cache while the token is fresh; from refresh_at on (expiry minus
//   the skew: oauth.refresh_skew, default min(60 s, 10 % of the lifetime), at most half the
//   lifetime) it still answers from the cache and starts one background refresh.
// - Single flight: callers that need a token while a request is running wait for that
//   request; the blocking libcurl call runs on a small thread pool and each waiter is
//   resumed on its own executor.
// - Failures back off (capped exponential); while backing off, callers without a valid
//   token get the last error at once.
// - Rotation: an identity of a higher generation drops every entry of lower generations;
//   a get() with an identity older than the newest seen is refused (identity_rotated), so
//   a token for an old certificate is never handed out after rotation.
// - Compromise: identity_burnt() drops the entries of the burnt generations at once, and
//   get() refuses those identities (identity_rotated) from then on.
// - Reload: prepare() checks a new [oauth] and reads its CA bundle, apply() puts it in use.
//   A profile whose settings changed loses its cached tokens (every profile does when the
//   issuer, token endpoint, CA bundle or timeout changed); a removed profile is dropped; the
//   others keep their tokens. A request in flight for a changed profile is not cached.
// - Status never contains a token (only log::redact()'s short hash).
#pragma once

#include "agent/identity/identity.hpp"
#include "agent/token/token_request.hpp"
#include "agent/token/token_source.hpp"
#include "config/config.hpp"

#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace mtls::token {

struct CacheSettings {
    std::chrono::seconds default_expires_in{300};  // when the AS sends no expires_in
    std::chrono::seconds max_expires_in{365L * 24 * 3600};
    std::chrono::milliseconds backoff_initial{1000};
    std::chrono::milliseconds backoff_max{60000};
    std::size_t threads = 2;  // workers for blocking token requests
    std::size_t max_response_bytes = 64 * 1024;
};

struct EntryStatus {
    std::string profile;
    std::string thumbprint;  // x5t#S256 of the certificate the entry is for
    std::uint64_t generation = 0;
    std::string state;  // "valid", "refreshing", "fetching", "failed", "empty"
    std::optional<std::chrono::system_clock::time_point> valid_until;
    std::optional<std::chrono::system_clock::time_point> refresh_at;
    std::optional<TokenError> last_error;
    std::optional<std::chrono::system_clock::time_point> next_attempt;  // while backing off
    unsigned failures = 0;
    std::string token_ref;  // log::redact(token): correlates with logs; never the token
    std::string binding;    // "bound" (JWT cnf checked) or "opaque"
};

class TokenCache final : public TokenSource {
  public:
    // Throws std::invalid_argument when `oauth` is unusable (no issuer nor token_endpoint,
    // no ca_file, duplicate profile names).
    explicit TokenCache(config::OAuth oauth, CacheSettings settings = {});
    ~TokenCache() override;  // waits for requests in flight (bounded by oauth.timeout)
    TokenCache(const TokenCache&) = delete;
    TokenCache& operator=(const TokenCache&) = delete;

    net::awaitable<TokenResult> get(const std::string& profile, identity::IdentityPtr id) override;
    void invalidate(const std::string& profile, const std::string& thumbprint) override;

    // Admin "tokens flush": forgets every token, error and backoff, and the discovered
    // endpoint. A request already in flight still completes (its token is fresh).
    void flush();
    // Tell the cache about a newly published identity (IdentityStore subscription): drops
    // the entries of every other certificate at once instead of at the next get().
    void identity_changed(const identity::IdentityPtr& current);
    // The identities up to this generation were burnt (declared compromised, or the
    // certificate revoked: IdentityStore::burn()): their entries go at once (a fetch in
    // flight is not cached) and get() refuses such identities from now on.
    void identity_burnt(std::uint64_t through_generation);

    // The settings in use: [oauth] with its AS trust and discovered token endpoint.
    struct Conf;
    // A new [oauth] checked (throws std::invalid_argument / std::runtime_error as the
    // constructor does; with no profiles, issuer and ca_file may be empty). Changes nothing.
    std::shared_ptr<const Conf> prepare(config::OAuth oauth) const;
    // Puts prepared settings in use (see the top). Never throws.
    void apply(std::shared_ptr<const Conf> next);

    std::vector<EntryStatus> status() const;
    nlohmann::json status_json() const;  // {"profiles": [...]} for the admin socket
    std::uint64_t requests_started() const { return requests_.load(); }
    // Failed token requests since start by (profile, reason): the error code (errors.hpp, or
    // the AS's RFC 6749 code; "other" for a code outside those, so the AS cannot make up
    // label values).
    std::map<std::pair<std::string, std::string>, std::uint64_t> failure_counts() const;

  private:
    struct Entry;
    using Clock = std::chrono::steady_clock;
    using Waiter = std::function<void(TokenResult)>;

    // Under mu_: an answer now (fresh token, or the last error while backing off), or
    // nullopt: wait for a request (in flight, or to be started).
    std::optional<TokenResult> answer_locked(const std::shared_ptr<Entry>& e,
                                             Clock::time_point now);
    void start_fetch_locked(const std::shared_ptr<Entry>& e, identity::IdentityPtr id);
    void fetch(std::shared_ptr<Entry> e, identity::IdentityPtr id);
    void complete(const std::shared_ptr<Entry>& e, std::variant<ObtainedToken, TokenError> r);
    std::variant<std::string, TokenError> token_endpoint(const Conf& c);
    void note_identity_locked(const identity::IdentityPtr& id);
    std::shared_ptr<const Conf> conf() const;

    CacheSettings settings_;

    mutable std::mutex mu_;
    std::shared_ptr<const Conf> conf_;  // under mu_; replaced whole by apply()
    std::map<std::pair<std::string, std::string>, std::shared_ptr<Entry>> entries_;
    std::uint64_t newest_generation_ = 0;
    std::uint64_t burnt_through_ = 0;  // identities of this generation or older: never again
    bool stopping_ = false;

    std::atomic<std::uint64_t> requests_{0};
    std::map<std::pair<std::string, std::string>, std::uint64_t> failures_;  // under mu_
    struct Pool;
    std::unique_ptr<Pool> pool_;
};

}  // namespace mtls::token
