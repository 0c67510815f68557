#include "agent/token/token_cache.hpp"

#include "agent/token/discovery.hpp"
#include "agent/token/errors.hpp"
#include "common/log.hpp"

#include <algorithm>
#include <ctime>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>

namespace mtls::token {

namespace asio = net::asio;

struct TokenCache::Entry {
    std::string profile;
    std::string x5t;
    std::uint64_t generation = 0;

    std::optional<Token> token;
    BindingCheck::Result binding = BindingCheck::Result::opaque;
    Clock::time_point expires_at{};
    Clock::time_point refresh_at{};

    bool in_flight = false;
    std::vector<Waiter> waiters;

    std::optional<TokenError> last_error;
    unsigned failures = 0;
    Clock::time_point retry_at{};
};

struct TokenCache::Pool {
    explicit Pool(std::size_t n) : pool(n) {}
    asio::thread_pool pool;
};

namespace {

// A token is handed out only while at least this much of it is left.
constexpr std::chrono::seconds kMinRemaining{2};

// What a caller gets: the error with the profile named once (the layers below do not name
// it; the log line and status carry it as a field of their own).
TokenError token_error_for_caller(const std::string& profile, TokenError err) {
    err.message = "access token for profile " + profile + ": " + err.message;
    return err;
}

std::chrono::system_clock::time_point to_system(std::chrono::steady_clock::time_point t) {
    auto now_s = std::chrono::steady_clock::now();
    auto now_w = std::chrono::system_clock::now();
    return now_w + std::chrono::duration_cast<std::chrono::system_clock::duration>(t - now_s);
}

std::string iso8601(std::chrono::system_clock::time_point t) {
    std::time_t tt = std::chrono::system_clock::to_time_t(t);
    std::tm tm{};
    gmtime_r(&tt, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

// The reason label of a failed request: a code of ours or of RFC 6749 / RFC 8707, else
// "other".
std::string failure_reason(const std::string& code) {
    static const std::set<std::string> known{
        errc::discovery_failed, errc::as_unreachable,     errc::as_untrusted,
        errc::as_timeout,       errc::as_error,           errc::bad_response,
        errc::token_not_bound,  errc::token_malformed,    errc::config_error,
        "invalid_request",      "invalid_client",         "invalid_grant",
        "unauthorized_client",  "unsupported_grant_type", "invalid_scope",
        "invalid_target"};
    return known.count(code) ? code : "other";
}

long long seconds_until(std::chrono::steady_clock::time_point t,
                        std::chrono::steady_clock::time_point now) {
    auto d = std::chrono::duration_cast<std::chrono::milliseconds>(t - now).count();
    return d <= 0 ? 0 : (d + 999) / 1000;
}

}  // namespace

// The discovered token endpoint, shared by the settings of one authorization server (kept
// across a reload that does not change the AS side).
struct TokenEndpoint {
    std::mutex mu;  // discovery runs once at a time (on a worker thread)
    std::optional<std::string> url;
};

struct TokenCache::Conf {
    config::OAuth oauth;
    RequestSettings request;
    std::string as_key;  // issuer, token endpoint, CA bundle path and bytes, timeout
    // Set once more by apply() before the settings are published (the same AS: the endpoint
    // discovered so far is kept); never changed after.
    mutable std::shared_ptr<TokenEndpoint> endpoint = std::make_shared<TokenEndpoint>();

    const config::TokenProfile* find(const std::string& name) const {
        for (const auto& p : oauth.profiles)
            if (p.name == name) return &p;
        return nullptr;
    }
};

namespace {

bool same_profile(const config::TokenProfile& a, const config::TokenProfile& b) {
    return a.client_id == b.client_id && a.auth_method == b.auth_method && a.scope == b.scope &&
           a.resources == b.resources && a.audience == b.audience;
}

std::string file_bytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream out;
    out << in.rdbuf();
    return in ? out.str() : std::string("(unreadable)");
}

}  // namespace

std::shared_ptr<const TokenCache::Conf> TokenCache::prepare(config::OAuth oauth) const {
    auto c = std::make_shared<Conf>();
    c->oauth = std::move(oauth);
    const auto& o = c->oauth;
    std::set<std::string> names;
    for (const auto& p : o.profiles) {
        if (p.name.empty() || p.client_id.empty())
            throw std::invalid_argument(
                "oauth.profiles: every profile needs a name and a client_id");
        if (!names.insert(p.name).second)
            throw std::invalid_argument("oauth.profiles: duplicate profile name " + p.name);
    }
    if (o.profiles.empty() && o.issuer.empty() && o.token_endpoint.empty())
        return c;  // no tokens to get: nothing else is needed
    if (o.issuer.empty() && o.token_endpoint.empty())
        throw std::invalid_argument("oauth: set issuer (RFC 8414 discovery) or token_endpoint");
    if (!o.token_endpoint.empty() && !is_https_url(o.token_endpoint))
        throw std::invalid_argument("oauth.token_endpoint \"" + o.token_endpoint +
                                    "\" is not an https URL");
    if (o.token_endpoint.empty() && metadata_urls(o.issuer).empty())
        throw std::invalid_argument("oauth.issuer \"" + o.issuer +
                                    "\" is not an https URL without query or fragment");
    if (o.ca_file.empty())
        throw std::invalid_argument(
            "oauth.ca_file is required (the CA that issued the AS's "
            "server certificate)");
    c->request.trust = http::ServerTrust::from_ca_file(o.ca_file);
    c->request.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(o.timeout);
    if (c->request.timeout <= std::chrono::milliseconds::zero())
        c->request.timeout = std::chrono::milliseconds(15000);
    c->request.max_response_bytes = settings_.max_response_bytes;
    c->request.limits.default_expires_in = settings_.default_expires_in;
    c->request.limits.max_expires_in = settings_.max_expires_in;
    c->as_key = o.issuer + "\n" + o.token_endpoint + "\n" + o.ca_file + "\n" +
                std::to_string(o.timeout.count()) + "\n" + file_bytes(o.ca_file);
    if (!o.token_endpoint.empty()) c->endpoint->url = o.token_endpoint;
    return c;
}

TokenCache::TokenCache(config::OAuth oauth, CacheSettings settings) : settings_(settings) {
    if (oauth.issuer.empty() && oauth.token_endpoint.empty())
        throw std::invalid_argument("oauth: set issuer (RFC 8414 discovery) or token_endpoint");
    if (settings_.backoff_initial <= std::chrono::milliseconds::zero())
        settings_.backoff_initial = std::chrono::milliseconds(1);
    settings_.backoff_max = std::max(settings_.backoff_max, settings_.backoff_initial);
    conf_ = prepare(std::move(oauth));
    pool_ = std::make_unique<Pool>(std::max<std::size_t>(1, settings_.threads));
}

std::shared_ptr<const TokenCache::Conf> TokenCache::conf() const {
    std::lock_guard lk(mu_);
    return conf_;
}

void TokenCache::apply(std::shared_ptr<const Conf> next) {
    std::vector<std::string> changed, removed, added;
    {
        std::lock_guard lk(mu_);
        const bool as_changed = next->as_key != conf_->as_key;
        if (!as_changed) next->endpoint = conf_->endpoint;
        for (const auto& p : conf_->oauth.profiles) {
            const auto* now = next->find(p.name);
            if (!now)
                removed.push_back(p.name);
            else if (as_changed || !same_profile(p, *now))
                changed.push_back(p.name);
        }
        for (const auto& p : next->oauth.profiles)
            if (!conf_->find(p.name)) added.push_back(p.name);
        auto listed = [](const std::vector<std::string>& v, const std::string& n) {
            return std::find(v.begin(), v.end(), n) != v.end();
        };
        // Waiters of a request in flight are answered by complete() (not cached: gone here).
        for (auto it = entries_.begin(); it != entries_.end();) {
            const auto& name = it->second->profile;
            if (listed(changed, name) || listed(removed, name))
                it = entries_.erase(it);
            else
                ++it;
        }
        conf_ = std::move(next);
    }
    log::info("oauth.reloaded", {{"profiles_added", added.size()},
                                 {"profiles_changed", changed.size()},
                                 {"profiles_removed", removed.size()}});
}

TokenCache::~TokenCache() {
    {
        std::lock_guard lk(mu_);
        stopping_ = true;
    }
    pool_->pool.join();  // fetches not yet started complete at once with shutting_down
    std::vector<Waiter> orphans;
    {
        std::lock_guard lk(mu_);
        for (auto& [k, e] : entries_)
            for (auto& w : e->waiters) orphans.push_back(std::move(w));
        entries_.clear();
    }
    for (auto& w : orphans) w(make_error(errc::shutting_down, "the token cache is shutting down"));
}

void TokenCache::note_identity_locked(const identity::IdentityPtr& id) {
    if (id->generation() <= newest_generation_) return;
    newest_generation_ = id->generation();
    for (auto it = entries_.begin(); it != entries_.end();) {
        if (it->second->generation < newest_generation_ && it->second->x5t != id->x5t_s256()) {
            log::info("oauth.token_dropped", {{"profile", it->second->profile},
                                              {"thumbprint", it->second->x5t},
                                              {"reason", "identity rotated"}});
            it = entries_.erase(it);  // waiters of a fetch in flight are answered by complete()
        } else {
            ++it;
        }
    }
}

void TokenCache::identity_changed(const identity::IdentityPtr& current) {
    if (!current) return;
    std::lock_guard lk(mu_);
    note_identity_locked(current);
}

void TokenCache::identity_burnt(std::uint64_t through_generation) {
    std::lock_guard lk(mu_);
    burnt_through_ = std::max(burnt_through_, through_generation);
    for (auto it = entries_.begin(); it != entries_.end();) {
        if (it->second->generation <= burnt_through_) {
            log::info("oauth.token_dropped", {{"profile", it->second->profile},
                                              {"thumbprint", it->second->x5t},
                                              {"reason", "identity compromised"}});
            it = entries_.erase(it);  // waiters of a fetch in flight are answered by complete()
        } else {
            ++it;
        }
    }
}

std::optional<TokenResult> TokenCache::answer_locked(const std::shared_ptr<Entry>& e,
                                                     Clock::time_point now) {
    // A fresh token (get() starts a background refresh from refresh_at on).
    if (e->token && now + kMinRemaining < e->expires_at) return TokenResult{*e->token};
    if (e->in_flight) return std::nullopt;  // wait for the request in flight
    if (e->last_error && now < e->retry_at) {
        TokenError err = token_error_for_caller(e->profile, *e->last_error);
        err.message +=
            " (next attempt in " + std::to_string(seconds_until(e->retry_at, now)) + " s)";
        return TokenResult{std::move(err)};
    }
    if (stopping_)
        return TokenResult{make_error(errc::shutting_down, "the token cache is shutting down")};
    return std::nullopt;  // start a request and wait for it
}

void TokenCache::start_fetch_locked(const std::shared_ptr<Entry>& e, identity::IdentityPtr id) {
    e->in_flight = true;
    ++requests_;
    asio::post(pool_->pool, [this, e, id = std::move(id)]() mutable { fetch(e, std::move(id)); });
}

net::awaitable<TokenResult> TokenCache::get(const std::string& profile_name,
                                            identity::IdentityPtr id) {
    if (!id)
        co_return make_error(errc::no_identity,
                             "no client certificate yet (enrollment pending or failed; see "
                             "`mtls-agentctl status`)");
    if (!conf()->find(profile_name))
        co_return make_error(errc::no_profile, "no token profile named \"" + profile_name +
                                                   "\" in [oauth] (check routes.token_profile)");
    const auto key = std::make_pair(profile_name, id->x5t_s256());

    std::shared_ptr<Entry> entry;
    {
        std::lock_guard lk(mu_);
        if (id->generation() <= burnt_through_)
            co_return make_error(errc::identity_rotated,
                                 "the client certificate " + id->x5t_s256() +
                                     " was declared compromised; no token is requested for it");
        note_identity_locked(id);
        if (id->generation() < newest_generation_)
            co_return make_error(
                errc::identity_rotated,
                "the client certificate " + id->x5t_s256() +
                    " was replaced by a newer one; retry with the current identity");
        auto& slot = entries_[key];
        if (!slot) {
            slot = std::make_shared<Entry>();
            slot->profile = profile_name;
            slot->x5t = id->x5t_s256();
            slot->generation = id->generation();
        }
        entry = slot;
        auto now = Clock::now();
        if (auto ready = answer_locked(entry, now)) {
            if (std::holds_alternative<Token>(*ready) && now >= entry->refresh_at &&
                !entry->in_flight && now >= entry->retry_at && !stopping_) {
                log::debug("oauth.token_refresh_ahead",
                           {{"profile", profile_name}, {"thumbprint", key.second}});
                start_fetch_locked(entry, id);
            }
            co_return std::move(*ready);
        }
    }

    // Wait for a request: register under the lock in the initiation, so that a request that
    // completes in between cannot be missed. The initiation captures by reference only
    // (entry and id live in this frame until it resumes): GCC 12 destroys captured
    // non-trivial objects of a lambda temporary in a co_await expression twice.
    auto initiation = [this, &entry, &id](auto handler) {
        using H = std::decay_t<decltype(handler)>;
        auto h = std::make_shared<H>(std::move(handler));
        auto resume = [h](TokenResult r) {
            auto ex = asio::get_associated_executor(*h);
            asio::post(ex, [h, r = std::move(r)]() mutable { (*h)(std::move(r)); });
        };
        std::unique_lock lk(mu_);
        if (auto ready = answer_locked(entry, Clock::now())) {
            lk.unlock();
            resume(std::move(*ready));
            return;
        }
        entry->waiters.push_back(std::move(resume));
        if (!entry->in_flight) start_fetch_locked(entry, id);
    };
    TokenResult result =
        co_await asio::async_initiate<decltype(asio::use_awaitable), void(TokenResult)>(
            initiation, asio::use_awaitable);
    co_return result;
}

std::variant<std::string, TokenError> TokenCache::token_endpoint(const Conf& c) {
    const auto& o = c.oauth;
    std::lock_guard lk(c.endpoint->mu);
    if (c.endpoint->url) return *c.endpoint->url;
    auto d = discover(o.issuer, c.request.trust, c.request.timeout);
    if (auto* err = std::get_if<TokenError>(&d)) return *err;
    auto& m = std::get<AsMetadata>(d);
    if (!m.bound_tokens)
        log::warn(
            "oauth.metadata_no_bound_tokens",
            {{"issuer", o.issuer},
             {"note", "the AS does not advertise tls_client_certificate_bound_access_tokens"}});
    for (const auto& p : o.profiles) {
        auto method = p.auth_method == config::TokenProfile::AuthMethod::self_signed_tls_client_auth
                          ? "self_signed_tls_client_auth"
                          : "tls_client_auth";
        if (!m.auth_methods.empty() &&
            std::find(m.auth_methods.begin(), m.auth_methods.end(), method) == m.auth_methods.end())
            log::warn("oauth.auth_method_not_advertised",
                      {{"profile", p.name}, {"auth_method", method}, {"issuer", o.issuer}});
    }
    c.endpoint->url = m.token_endpoint;
    return *c.endpoint->url;
}

void TokenCache::fetch(std::shared_ptr<Entry> e, identity::IdentityPtr id) {
    bool stop;
    {
        std::lock_guard lk(mu_);
        stop = stopping_;
    }
    if (stop) {
        complete(e, make_error(errc::shutting_down, "the token cache is shutting down"));
        return;
    }
    const auto c = conf();  // the settings this request uses, even if a reload changes them
    const auto* profile = c->find(e->profile);
    if (!profile) {
        complete(e, make_error(errc::no_profile,
                               "token profile " + e->profile + " was removed by a reload"));
        return;
    }
    auto ep = token_endpoint(*c);
    if (auto* err = std::get_if<TokenError>(&ep)) {
        complete(e, *err);
        return;
    }
    log::debug("oauth.token_request", {{"profile", e->profile},
                                       {"client_id", profile->client_id},
                                       {"endpoint", std::get<std::string>(ep)},
                                       {"thumbprint", e->x5t}});
    complete(e, request_token(std::get<std::string>(ep), *profile, *id, c->request));
}

void TokenCache::complete(const std::shared_ptr<Entry>& e,
                          std::variant<ObtainedToken, TokenError> r) {
    std::vector<Waiter> waiters;
    TokenResult answer;
    {
        std::lock_guard lk(mu_);
        e->in_flight = false;
        auto now = Clock::now();
        auto it = entries_.find({e->profile, e->x5t});
        bool current = it != entries_.end() && it->second == e;
        if (auto* ok = std::get_if<ObtainedToken>(&r)) {
            auto lifetime = ok->lifetime;
            auto skew =
                conf_->oauth.refresh_skew
                    ? std::chrono::duration_cast<std::chrono::seconds>(*conf_->oauth.refresh_skew)
                    : std::min<std::chrono::seconds>(std::chrono::seconds(60), lifetime / 10);
            skew = std::min<std::chrono::seconds>(skew, lifetime / 2);
            Token t{ok->response.access_token, "Bearer"};
            if (current) {
                e->token = t;
                e->binding = ok->binding;
                e->expires_at = now + lifetime;
                e->refresh_at = e->expires_at - skew;
                e->failures = 0;
                e->last_error.reset();
                e->retry_at = {};
                answer = std::move(t);
            } else {
                answer = make_error(errc::identity_rotated,
                                    "the client certificate " + e->x5t +
                                        " was replaced or the tokens were flushed while its token "
                                        "was requested; retry");
            }
            if (ok->response.expires_in_defaulted)
                log::warn(
                    "oauth.token_expires_in_missing",
                    {{"profile", e->profile},
                     {"assumed_s", static_cast<long long>(settings_.default_expires_in.count())}});
            if (ok->response.expires_in_capped)
                log::warn("oauth.token_expires_in_capped",
                          {{"profile", e->profile},
                           {"cap_s", static_cast<long long>(settings_.max_expires_in.count())}});
            log::info("oauth.token_obtained",
                      {{"profile", e->profile},
                       {"thumbprint", e->x5t},
                       {"expires_in_s", static_cast<long long>(lifetime.count())},
                       {"refresh_in_s", static_cast<long long>((lifetime - skew).count())},
                       {"binding", to_string(ok->binding)},
                       {"token", log::redact(ok->response.access_token)},
                       {"cached", current ? "yes" : "no (identity rotated)"}});
        } else {
            auto& err = std::get<TokenError>(r);
            ++e->failures;
            auto backoff = settings_.backoff_initial;
            for (unsigned i = 1; i < e->failures && backoff < settings_.backoff_max; ++i)
                backoff *= 2;
            backoff = std::min(backoff, settings_.backoff_max);
            e->retry_at = now + backoff;
            e->last_error = err;
            if (err.code != errc::shutting_down)
                ++failures_[{e->profile, failure_reason(err.code)}];
            log::warn("oauth.token_request_failed",
                      {{"profile", e->profile},
                       {"thumbprint", e->x5t},
                       {"code", err.code},
                       {"error", err.message},
                       {"failures", e->failures},
                       {"retry_in_ms", static_cast<long long>(backoff.count())}});
            answer = token_error_for_caller(e->profile, err);
        }
        waiters.swap(e->waiters);
    }
    for (auto& w : waiters) w(answer);
}

void TokenCache::invalidate(const std::string& profile, const std::string& thumbprint) {
    std::lock_guard lk(mu_);
    auto it = entries_.find({profile, thumbprint});
    if (it == entries_.end() || !it->second->token) return;
    log::info("oauth.token_invalidated", {{"profile", profile},
                                          {"thumbprint", thumbprint},
                                          {"token", log::redact(it->second->token->access_token)}});
    it->second->token.reset();
    it->second->expires_at = {};
    it->second->refresh_at = {};
}

void TokenCache::flush() {
    {
        std::lock_guard lk(mu_);
        // Entries with a request in flight stay (their waiters need an answer) but lose
        // their token and error state; the others go.
        for (auto it = entries_.begin(); it != entries_.end();) {
            if (it->second->in_flight) {
                it->second->token.reset();
                it->second->last_error.reset();
                it->second->failures = 0;
                it->second->retry_at = {};
                ++it;
            } else {
                it = entries_.erase(it);
            }
        }
    }
    const auto c = conf();
    if (!c->oauth.issuer.empty() && c->oauth.token_endpoint.empty()) {
        std::lock_guard lk(c->endpoint->mu);
        c->endpoint->url.reset();
    }
    log::info("oauth.tokens_flushed");
}

std::vector<EntryStatus> TokenCache::status() const {
    std::vector<EntryStatus> out;
    std::lock_guard lk(mu_);
    auto now = Clock::now();
    std::set<std::string> seen;
    for (const auto& [key, e] : entries_) {
        EntryStatus s;
        s.profile = e->profile;
        s.thumbprint = e->x5t;
        s.generation = e->generation;
        s.failures = e->failures;
        s.last_error = e->last_error;
        bool valid = e->token && now + kMinRemaining < e->expires_at;
        if (valid) {
            s.valid_until = to_system(e->expires_at);
            s.refresh_at = to_system(e->refresh_at);
            s.token_ref = log::redact(e->token->access_token);
            s.binding = to_string(e->binding);
        }
        if (e->last_error && now < e->retry_at) s.next_attempt = to_system(e->retry_at);
        s.state = e->in_flight    ? (valid ? "refreshing" : "fetching")
                  : valid         ? "valid"
                  : e->last_error ? "failed"
                                  : "empty";
        seen.insert(e->profile);
        out.push_back(std::move(s));
    }
    for (const auto& p : conf_->oauth.profiles)
        if (!seen.count(p.name)) {
            EntryStatus s;
            s.profile = p.name;
            s.state = "empty";
            out.push_back(std::move(s));
        }
    return out;
}

std::map<std::pair<std::string, std::string>, std::uint64_t> TokenCache::failure_counts() const {
    std::lock_guard lk(mu_);
    return failures_;
}

nlohmann::json TokenCache::status_json() const {
    nlohmann::json arr = nlohmann::json::array();
    for (const auto& s : status()) {
        nlohmann::json j = {{"profile", s.profile}, {"state", s.state}, {"failures", s.failures}};
        if (!s.thumbprint.empty()) {
            j["thumbprint"] = s.thumbprint;
            j["generation"] = s.generation;
        }
        if (s.valid_until) j["valid_until"] = iso8601(*s.valid_until);
        if (s.refresh_at) j["refresh_at"] = iso8601(*s.refresh_at);
        if (!s.token_ref.empty()) j["token_ref"] = s.token_ref;
        if (!s.binding.empty()) j["binding"] = s.binding;
        if (s.last_error)
            j["last_error"] = {{"code", s.last_error->code}, {"message", s.last_error->message}};
        if (s.next_attempt) j["next_attempt"] = iso8601(*s.next_attempt);
        arr.push_back(std::move(j));
    }
    return {{"profiles", arr}};
}

}  // namespace mtls::token
