// The revocation cache, thread-safe. Two kinds of entries:
//   - answers: one certificate's status (from OCSP, a staple or a CRL lookup), keyed by
//     (issuer key hash, serial) — the CertID without its hash algorithm;
//   - CRLs: a checked CRL, keyed by (issuer key hash, URL), so that any certificate of that
//     issuer is answered from it without I/O.
// An entry is held until its nextUpdate, never longer than max_age after it was fetched
// (no nextUpdate: max_age). Entries keep the certificates they were made for (up-referenced)
// so the checker can refresh them in the background before they expire.
#pragma once

#include <openssl/x509.h>

#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/ossl.hpp"
#include "revocation/crl.hpp"
#include "revocation/verdict.hpp"

namespace mtls::revocation {

struct AnswerKey {
    std::string issuer_key_hash;
    std::string serial;
    auto operator<=>(const AnswerKey&) const = default;
};

struct CachedAnswer {
    CertVerdict verdict;  // as fetched (source ocsp/staple/crl/crl-file)
    Clock::time_point fetched, expires;
    std::shared_ptr<X509> cert, issuer;
    Clock::time_point last_used;
};

struct CachedCrl {
    crl::SharedCrl crl;
    std::string url;
    std::shared_ptr<X509> issuer;
    Clock::time_point fetched, expires;
    Clock::time_point last_used;
};

// The expiry of an answer fetched at `fetched` with this nextUpdate, bounded by max_age.
Clock::time_point expiry_of(Clock::time_point fetched, std::optional<Clock::time_point> next,
                            std::chrono::seconds max_age);

std::shared_ptr<X509> share_x509(X509* c);  // up-refs

class Cache {
  public:
    // A valid answer for (issuer, cert), marked used; nullopt when none or expired.
    std::optional<CertVerdict> find_answer(const AnswerKey& key, Clock::time_point now);
    void put_answer(const AnswerKey& key, CachedAnswer a);

    // The status of `cert` from a cached, unexpired CRL of `issuer_key_hash`, if any.
    std::optional<CertVerdict> find_in_crls(const std::string& issuer_key_hash, X509* cert,
                                            Clock::time_point now);
    void put_crl(const std::string& issuer_key_hash, CachedCrl c);

    // Entries due for a refresh: fetched more than 2/3 of their lifetime ago (or less than
    // `margin` before expiry), used within `recent`.
    std::vector<std::pair<AnswerKey, CachedAnswer>> answers_due(Clock::time_point now,
                                                                std::chrono::seconds margin,
                                                                std::chrono::seconds recent);
    std::vector<std::pair<std::string, CachedCrl>> crls_due(Clock::time_point now,
                                                            std::chrono::seconds margin,
                                                            std::chrono::seconds recent);
    // Drops expired entries; returns how many.
    std::size_t purge(Clock::time_point now);
    void clear();
    std::size_t size() const;

  private:
    mutable std::mutex mu_;
    std::map<AnswerKey, CachedAnswer> answers_;
    std::map<std::pair<std::string, std::string>, CachedCrl> crls_;  // (key hash, url)
};

}  // namespace mtls::revocation
