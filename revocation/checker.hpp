// The revocation checker: is any certificate of a chain revoked?
//
//   revocation::Checker checker(settings);           // one per process; thread-safe
//   Verdict v = checker.check_chain({leaf, intermediate, root}, {.target = "route:a"});
//   if (v.revoked()) refuse(v.describe());
//
// check_chain() BLOCKS (network fetches, up to Settings::fetch_timeout per source): call it
// from a worker thread, never from an io_context thread. cached() never does I/O and is
// what a request path calls first; feed_staple() takes a stapled OCSP response from a TLS
// handshake (no responder round trip then).
//
// The chain is leaf first, up to and including the trust anchor (e.g. what
// SSL_get0_verified_chain gives). Every certificate except the last one (the anchor) is
// checked against the next one (its issuer): intermediates too. Per certificate, in order:
//   1. the cache: an earlier answer (staple, OCSP, CRL lookup) until its nextUpdate, bounded
//      by max_cache_age; a cached CRL of the issuer; a local CRL file of the issuer
//      (Settings::crl_files);
//   2. (check_chain only) the OCSP responders of the certificate's AIA extension (POST,
//      application/ocsp-request, SHA-1 CertID), then its CRL distribution points (http://,
//      DER or PEM). A failed fetch is remembered for failure_backoff, during which the
//      failure is the (cached) answer, so a dead responder does not cost every connection
//      a timeout.
// A certificate that names neither (and has no local CRL) is unknown/no_source: logged once
// per certificate (revocation.no_source).
//
// A thread refreshes cached OCSP answers and CRLs used recently before they expire (2/3 of
// their lifetime), and reloads the local CRL files when they change on disk.
#pragma once

#include <openssl/x509.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <vector>

#include "revocation/cache.hpp"
#include "revocation/crl.hpp"
#include "revocation/verdict.hpp"

namespace mtls::revocation {

struct Settings {
    std::vector<std::string> crl_files;  // local CRLs (DER or PEM; a PEM file may hold several)
    std::chrono::seconds max_cache_age{std::chrono::hours(24)};
    std::chrono::milliseconds fetch_timeout{5000};
    std::chrono::seconds clock_skew{300};
    std::chrono::seconds failure_backoff{30};  // a failed fetch is the answer this long
    std::size_t max_ocsp_bytes = 64u * 1024;
    std::size_t max_crl_bytes = 16u << 20;
    bool nonce = false;  // RFC 5019 responders pre-produce answers; nonces defeat that
    std::chrono::milliseconds refresh_tick{1000};
    bool background_refresh = true;
};

struct CheckOptions {
    std::string target;  // who asks, for counters and logs ("route:partner-a", "est", …)
};

// Counters for metrics.
struct CheckCount {
    std::string target, source, result;
    std::uint64_t count = 0;
};

class Checker {
  public:
    explicit Checker(Settings settings = {});
    ~Checker();  // stops the refresh thread
    Checker(const Checker&) = delete;
    Checker& operator=(const Checker&) = delete;

    // New knobs and CRL files (reload). Cached answers are kept; CRL files are re-read.
    void update(Settings settings);

    // The blocking check (see above). Never throws.
    Verdict check_chain(const std::vector<X509*>& chain, const CheckOptions& options = {});

    // The verdict from what is known without I/O: every certificate answered by the cache,
    // a local CRL, a recent failure, or known to have no source. nullopt when one of them
    // would need a fetch. Never throws.
    std::optional<Verdict> cached(const std::vector<X509*>& chain);

    // Checks a stapled OCSP response (DER) for `leaf` issued by `issuer`; a good or revoked
    // answer is cached (source staple). Returns the per-certificate verdict (unknown with
    // bad_response when it does not verify).
    CertVerdict feed_staple(std::string_view der, X509* leaf, X509* issuer);

    // Counts one decision (for metrics: target × source × result).
    void record(const std::string& target, const Verdict& v);
    std::vector<CheckCount> counts() const;
    std::uint64_t fetch_failures() const { return fetch_failures_.load(); }
    std::size_t cache_size() const { return cache_.size(); }
    // Drops every cached answer and CRL (not the local CRL files).
    void clear_cache() { cache_.clear(); }

  private:
    struct LocalCrl {
        crl::SharedCrl crl;
        std::string path;
    };

    CertVerdict check_one(X509* cert, X509* issuer, int depth, bool allow_io);
    std::optional<CertVerdict> from_memory(X509* cert, X509* issuer, const AnswerKey& key,
                                           Clock::time_point now);
    CertVerdict fetch_one(X509* cert, X509* issuer, const AnswerKey& key);
    std::optional<CertVerdict> try_crl_url(const std::string& url, X509* cert, X509* issuer,
                                           const AnswerKey& key, CertVerdict& failure);
    void load_crl_files();
    void refresh_loop();
    void refresh_due();
    Settings settings_copy() const;

    mutable std::mutex
        mu_;  // settings_, local_crls_, crl_mtimes_, failures_, no_source_logged_, counts_
    Settings settings_;
    std::vector<LocalCrl> local_crls_;
    std::map<std::string, std::int64_t> crl_mtimes_;
    std::map<AnswerKey, std::pair<CertVerdict, Clock::time_point>> failures_;
    std::set<AnswerKey> no_source_logged_;
    std::map<std::tuple<std::string, std::string, std::string>, std::uint64_t> counts_;
    std::atomic<std::uint64_t> fetch_failures_{0};
    Cache cache_;

    std::mutex stop_mu_;
    std::condition_variable stop_cv_;
    bool stopping_ = false;
    std::thread refresher_;
};

}  // namespace mtls::revocation
