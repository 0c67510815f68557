#include "revocation/cache.hpp"

namespace mtls::revocation {
namespace {

bool cache_entry_due(Clock::time_point now, Clock::time_point fetched, Clock::time_point expires,
                     std::chrono::seconds margin) {
    const auto lifetime = expires - fetched;
    return now >= fetched + lifetime * 2 / 3 || now + margin >= expires;
}

}  // namespace

Clock::time_point expiry_of(Clock::time_point fetched, std::optional<Clock::time_point> next,
                            std::chrono::seconds max_age) {
    const auto bound = fetched + max_age;
    if (!next) return bound;
    return *next < bound ? *next : bound;
}

std::shared_ptr<X509> share_x509(X509* c) {
    if (!c || X509_up_ref(c) != 1) return {};
    return std::shared_ptr<X509>(c, [](X509* p) { X509_free(p); });
}

std::optional<CertVerdict> Cache::find_answer(const AnswerKey& key, Clock::time_point now) {
    std::lock_guard lk(mu_);
    auto it = answers_.find(key);
    if (it == answers_.end() || it->second.expires <= now) return std::nullopt;
    it->second.last_used = now;
    CertVerdict v = it->second.verdict;
    v.origin = v.source;
    v.source = Source::cache;
    return v;
}

void Cache::put_answer(const AnswerKey& key, CachedAnswer a) {
    std::lock_guard lk(mu_);
    auto it = answers_.find(key);
    if (it != answers_.end() && a.last_used < it->second.last_used)
        a.last_used = it->second.last_used;
    answers_[key] = std::move(a);
}

std::optional<CertVerdict> Cache::find_in_crls(const std::string& issuer_key_hash, X509* cert,
                                               Clock::time_point now) {
    std::lock_guard lk(mu_);
    for (auto it = crls_.lower_bound({issuer_key_hash, std::string()});
         it != crls_.end() && it->first.first == issuer_key_hash; ++it) {
        if (it->second.expires <= now) continue;
        it->second.last_used = now;
        CertVerdict v = crl::lookup(it->second.crl.get(), cert, Source::crl);
        v.source = Source::cache;
        return v;
    }
    return std::nullopt;
}

void Cache::put_crl(const std::string& issuer_key_hash, CachedCrl c) {
    std::lock_guard lk(mu_);
    auto key = std::make_pair(issuer_key_hash, c.url);
    auto it = crls_.find(key);
    if (it != crls_.end() && c.last_used < it->second.last_used) c.last_used = it->second.last_used;
    crls_[key] = std::move(c);
}

std::vector<std::pair<AnswerKey, CachedAnswer>> Cache::answers_due(Clock::time_point now,
                                                                   std::chrono::seconds margin,
                                                                   std::chrono::seconds recent) {
    std::lock_guard lk(mu_);
    std::vector<std::pair<AnswerKey, CachedAnswer>> out;
    for (const auto& [k, a] : answers_)
        if (a.verdict.source == Source::ocsp && a.last_used + recent >= now &&
            cache_entry_due(now, a.fetched, a.expires, margin))
            out.emplace_back(k, a);
    return out;
}

std::vector<std::pair<std::string, CachedCrl>> Cache::crls_due(Clock::time_point now,
                                                               std::chrono::seconds margin,
                                                               std::chrono::seconds recent) {
    std::lock_guard lk(mu_);
    std::vector<std::pair<std::string, CachedCrl>> out;
    for (const auto& [k, c] : crls_)
        if (c.last_used + recent >= now && cache_entry_due(now, c.fetched, c.expires, margin))
            out.emplace_back(k.first, c);
    return out;
}

std::size_t Cache::purge(Clock::time_point now) {
    std::lock_guard lk(mu_);
    std::size_t n =
        std::erase_if(answers_, [&](const auto& kv) { return kv.second.expires <= now; });
    n += std::erase_if(crls_, [&](const auto& kv) { return kv.second.expires <= now; });
    return n;
}

void Cache::clear() {
    std::lock_guard lk(mu_);
    answers_.clear();
    crls_.clear();
}

std::size_t Cache::size() const {
    std::lock_guard lk(mu_);
    return answers_.size() + crls_.size();
}

}  // namespace mtls::revocation
