#include "revocation/checker.hpp"

#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include "common/log.hpp"
#include "revocation/cert_info.hpp"
#include "revocation/fetch.hpp"
#include "revocation/ocsp.hpp"

namespace mtls::revocation {
namespace {

std::int64_t checker_file_mtime(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return -1;
    return (static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec) ^
           static_cast<std::int64_t>(st.st_size);
}

bool checker_decided(const CertVerdict& v) {
    return v.status == Status::good || v.status == Status::revoked;
}

}  // namespace

Checker::Checker(Settings settings) : settings_(std::move(settings)) {
    load_crl_files();
    if (settings_.background_refresh) refresher_ = std::thread([this] { refresh_loop(); });
}

Checker::~Checker() {
    {
        std::lock_guard lk(stop_mu_);
        stopping_ = true;
    }
    stop_cv_.notify_all();
    if (refresher_.joinable()) refresher_.join();
}

Settings Checker::settings_copy() const {
    std::lock_guard lk(mu_);
    return settings_;
}

void Checker::update(Settings settings) {
    {
        std::lock_guard lk(mu_);
        settings.background_refresh = settings_.background_refresh;
        settings_ = std::move(settings);
        failures_.clear();
    }
    load_crl_files();
}

void Checker::load_crl_files() {
    const auto paths = settings_copy().crl_files;
    std::vector<LocalCrl> loaded;
    std::map<std::string, std::int64_t> mtimes;
    for (const auto& path : paths) {
        mtimes[path] = checker_file_mtime(path);
        std::ifstream in(path, std::ios::binary);
        std::stringstream ss;
        ss << in.rdbuf();
        auto crls = in ? crl::parse(ss.str()) : std::vector<crl::SharedCrl>{};
        if (crls.empty()) {
            log::error(
                "revocation.crl_file_failed",
                {{"path", path},
                 {"error", in ? "no CRL (DER or PEM) in the file" : "cannot read the file"}});
            continue;
        }
        for (auto& c : crls) loaded.push_back({std::move(c), path});
        log::info("revocation.crl_file_loaded", {{"path", path}, {"crls", crls.size()}});
    }
    std::lock_guard lk(mu_);
    local_crls_ = std::move(loaded);
    crl_mtimes_ = std::move(mtimes);
}

std::optional<CertVerdict> Checker::from_memory(X509* cert, X509* issuer, const AnswerKey& key,
                                                Clock::time_point now) {
    if (auto v = cache_.find_answer(key, now)) return v;
    std::vector<LocalCrl> locals;
    std::chrono::seconds skew;
    {
        std::lock_guard lk(mu_);
        locals = local_crls_;
        skew = settings_.clock_skew;
    }
    std::optional<CertVerdict> stale_local;
    for (const auto& l : locals) {
        if (!crl::check_issuer(l.crl.get(), issuer).empty()) continue;
        if (auto why = crl::check_time(l.crl.get(), skew); !why.empty()) {
            CertVerdict v;
            v.source = v.origin = Source::crl_file;
            v.problem = Problem::bad_response;
            v.why = l.path + ": " + why;
            v.subject = subject_of(cert);
            v.serial = key.serial;
            stale_local = v;
            continue;
        }
        return crl::lookup(l.crl.get(), cert, Source::crl_file);
    }
    if (auto v = cache_.find_in_crls(key.issuer_key_hash, cert, now)) return v;
    if (stale_local) return stale_local;
    std::lock_guard lk(mu_);
    if (auto it = failures_.find(key); it != failures_.end()) {
        if (it->second.second > now) return it->second.first;
        failures_.erase(it);
    }
    return std::nullopt;
}

std::optional<CertVerdict> Checker::try_crl_url(const std::string& url, X509* cert, X509* issuer,
                                                const AnswerKey& key, CertVerdict& failure) {
    const Settings s = settings_copy();
    failure.source = failure.origin = Source::crl;
    std::string data;
    try {
        data = http_fetch(url, {}, {}, {s.fetch_timeout, s.max_crl_bytes});
    } catch (const std::exception& e) {
        failure.problem = Problem::unreachable;
        failure.why = e.what();
        return std::nullopt;
    }
    std::string why = "no CRL (DER or PEM) at " + url;
    for (auto& c : crl::parse(data)) {
        why = crl::check_issuer(c.get(), issuer);
        if (why.empty()) why = crl::check_time(c.get(), s.clock_skew);
        if (!why.empty()) {
            why = url + ": " + why;
            continue;
        }
        const auto now = Clock::now();
        CachedCrl entry{c,
                        url,
                        share_x509(issuer),
                        now,
                        expiry_of(now, crl::next_update(c.get()), s.max_cache_age),
                        now};
        cache_.put_crl(key.issuer_key_hash, std::move(entry));
        return crl::lookup(c.get(), cert, Source::crl);
    }
    failure.problem = Problem::bad_response;
    failure.why = why;
    return std::nullopt;
}

CertVerdict Checker::fetch_one(X509* cert, X509* issuer, const AnswerKey& key) {
    const Settings s = settings_copy();
    CertVerdict failure;
    failure.subject = subject_of(cert);
    failure.serial = key.serial;
    for (const auto& url : ocsp_urls(cert)) {
        CertVerdict v = ocsp::query(url, cert, issuer, {s.fetch_timeout, s.max_ocsp_bytes},
                                    s.clock_skew, s.nonce);
        if (checker_decided(v)) {
            const auto now = Clock::now();
            cache_.put_answer(key, {v, now, expiry_of(now, v.next_update, s.max_cache_age),
                                    share_x509(cert), share_x509(issuer), now});
            return v;
        }
        ++fetch_failures_;
        log::warn("revocation.fetch_failed", {{"source", "ocsp"},
                                              {"url", url},
                                              {"subject", v.subject},
                                              {"serial", v.serial},
                                              {"problem", to_string(v.problem)},
                                              {"error", v.why}});
        failure = v;
    }
    for (const auto& url : crl_urls(cert)) {
        CertVerdict f = failure;
        if (auto v = try_crl_url(url, cert, issuer, key, f)) return *v;
        ++fetch_failures_;
        log::warn("revocation.fetch_failed", {{"source", "crl"},
                                              {"url", url},
                                              {"subject", failure.subject},
                                              {"serial", key.serial},
                                              {"problem", to_string(f.problem)},
                                              {"error", f.why}});
        failure = f;
    }
    failure.status = Status::unknown;
    std::lock_guard lk(mu_);
    failures_[key] = {failure, Clock::now() + settings_.failure_backoff};
    return failure;
}

CertVerdict Checker::check_one(X509* cert, X509* issuer, int depth, bool allow_io) {
    const AnswerKey key{key_hash_hex(issuer), serial_of(cert)};
    std::optional<CertVerdict> v = from_memory(cert, issuer, key, Clock::now());
    if (!v && ocsp_urls(cert).empty() && crl_urls(cert).empty()) {
        CertVerdict n;
        n.problem = Problem::no_source;
        n.subject = subject_of(cert);
        n.serial = key.serial;
        n.why = "the certificate names no OCSP responder and no CRL distribution point";
        bool first = false;
        {
            std::lock_guard lk(mu_);
            first = no_source_logged_.insert(key).second;
        }
        if (first)
            log::info("revocation.no_source",
                      {{"subject", n.subject}, {"serial", n.serial}, {"depth", depth}});
        v = n;
    }
    if (!v) {
        if (!allow_io) {
            CertVerdict n;
            n.problem = Problem::not_checked;
            n.subject = subject_of(cert);
            n.serial = key.serial;
            v = n;
        } else {
            v = fetch_one(cert, issuer, key);
        }
    }
    v->depth = depth;
    return *v;
}

Verdict Checker::check_chain(const std::vector<X509*>& chain, const CheckOptions& options) {
    (void)options;
    std::vector<CertVerdict> certs;
    if (chain.size() < 2) {
        CertVerdict n;
        n.problem = Problem::no_issuer;
        n.why = "the chain has no issuer certificate";
        if (!chain.empty()) {
            n.subject = subject_of(chain[0]);
            n.serial = serial_of(chain[0]);
        }
        certs.push_back(n);
        return combine(std::move(certs));
    }
    for (std::size_t i = 0; i + 1 < chain.size(); ++i) {
        certs.push_back(check_one(chain[i], chain[i + 1], static_cast<int>(i), true));
        if (certs.back().status == Status::revoked) break;
    }
    return combine(std::move(certs));
}

std::optional<Verdict> Checker::cached(const std::vector<X509*>& chain) {
    if (chain.size() < 2) return check_chain(chain);
    std::vector<CertVerdict> certs;
    for (std::size_t i = 0; i + 1 < chain.size(); ++i) {
        certs.push_back(check_one(chain[i], chain[i + 1], static_cast<int>(i), false));
        if (certs.back().problem == Problem::not_checked) return std::nullopt;
        if (certs.back().status == Status::revoked) break;
    }
    return combine(std::move(certs));
}

CertVerdict Checker::feed_staple(std::string_view der, X509* leaf, X509* issuer) {
    const Settings s = settings_copy();
    CertVerdict v = ocsp::verify_response(der, leaf, issuer, s.clock_skew);
    v.source = v.origin = Source::staple;
    if (checker_decided(v)) {
        const auto now = Clock::now();
        cache_.put_answer({key_hash_hex(issuer), serial_of(leaf)},
                          {v, now, expiry_of(now, v.next_update, s.max_cache_age), share_x509(leaf),
                           share_x509(issuer), now});
    }
    return v;
}

void Checker::record(const std::string& target, const Verdict& v) {
    const CertVerdict& leaf = v.certs.empty() ? v.culprit : v.certs.front();
    const Source src = leaf.source == Source::cache ? Source::cache : v.source;
    std::string result(to_string(v.status));
    if (v.status == Status::unknown) result += "/" + std::string(to_string(v.problem));
    std::lock_guard lk(mu_);
    ++counts_[{target, std::string(to_string(src)), result}];
}

std::vector<CheckCount> Checker::counts() const {
    std::lock_guard lk(mu_);
    std::vector<CheckCount> out;
    for (const auto& [k, n] : counts_)
        out.push_back({std::get<0>(k), std::get<1>(k), std::get<2>(k), n});
    return out;
}

void Checker::refresh_due() {
    const Settings s = settings_copy();
    const auto now = Clock::now();
    const std::chrono::seconds margin(30);
    for (auto& [key, a] : cache_.answers_due(now, margin, s.max_cache_age)) {
        CertVerdict failure;
        bool done = false;
        for (const auto& url : ocsp_urls(a.cert.get())) {
            CertVerdict v = ocsp::query(url, a.cert.get(), a.issuer.get(),
                                        {s.fetch_timeout, s.max_ocsp_bytes}, s.clock_skew, s.nonce);
            if (checker_decided(v)) {
                const auto t = Clock::now();
                cache_.put_answer(key, {v, t, expiry_of(t, v.next_update, s.max_cache_age), a.cert,
                                        a.issuer, a.last_used});
                done = true;
                break;
            }
            failure = v;
        }
        if (!done) {
            ++fetch_failures_;
            // Not retried before the next tick; the old answer is used until it expires.
            log::warn("revocation.refresh_failed", {{"source", "ocsp"},
                                                    {"serial", key.serial},
                                                    {"error", failure.why},
                                                    {"expires", iso_time(a.expires)}});
            cache_.put_answer(key, {a.verdict, Clock::now() - (a.expires - a.fetched) / 2,
                                    a.expires, a.cert, a.issuer, a.last_used});
        }
    }
    for (auto& [hash, c] : cache_.crls_due(now, margin, s.max_cache_age)) {
        std::string why;
        bool ok = false;
        try {
            auto data = http_fetch(c.url, {}, {}, {s.fetch_timeout, s.max_crl_bytes});
            why = "no CRL of the issuer in the answer";
            for (auto& fresh : crl::parse(data)) {
                why = crl::check_issuer(fresh.get(), c.issuer.get());
                if (why.empty()) why = crl::check_time(fresh.get(), s.clock_skew);
                if (!why.empty()) continue;
                const auto t = Clock::now();
                cache_.put_crl(hash, {fresh, c.url, c.issuer, t,
                                      expiry_of(t, crl::next_update(fresh.get()), s.max_cache_age),
                                      c.last_used});
                ok = true;
                break;
            }
        } catch (const std::exception& e) {
            why = e.what();
        }
        if (!ok) {
            ++fetch_failures_;
            log::warn("revocation.refresh_failed", {{"source", "crl"},
                                                    {"url", c.url},
                                                    {"error", why},
                                                    {"expires", iso_time(c.expires)}});
        }
    }
    cache_.purge(Clock::now());
}

void Checker::refresh_loop() {
    for (;;) {
        std::chrono::milliseconds tick;
        {
            std::lock_guard lk(mu_);
            tick = settings_.refresh_tick;
        }
        {
            std::unique_lock lk(stop_mu_);
            if (stop_cv_.wait_for(lk, tick, [this] { return stopping_; })) return;
        }
        bool changed = false;
        {
            std::lock_guard lk(mu_);
            for (const auto& [path, mtime] : crl_mtimes_)
                if (checker_file_mtime(path) != mtime) changed = true;
        }
        if (changed) load_crl_files();
        try {
            refresh_due();
        } catch (const std::exception& e) {
            log::error("revocation.refresh_failed", {{"error", e.what()}});
        }
    }
}

}  // namespace mtls::revocation
