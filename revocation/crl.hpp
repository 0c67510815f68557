// Certificate revocation lists (RFC 5280 §5) with OpenSSL's X509_CRL API: parsing (DER, as
// CAs publish them at distribution points, or PEM), the issuer and time checks, and the
// lookup of a serial number.
#pragma once

#include <openssl/x509.h>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "revocation/ossl_types.hpp"
#include "revocation/verdict.hpp"

namespace mtls::revocation::crl {

using SharedCrl = std::shared_ptr<X509_CRL>;

// Every CRL in `data`: one DER CRL, or one or more PEM "X509 CRL" blocks. Empty when none
// parses. Never throws.
std::vector<SharedCrl> parse(std::string_view data);

// "" when `crl` was issued by `issuer` (names match, the signature verifies with the
// issuer's key, the issuer may sign CRLs, no unsupported critical extension — delta and
// indirect CRLs are not used); else why not.
std::string check_issuer(X509_CRL* crl, X509* issuer);

// "" when thisUpdate <= now + skew and (no nextUpdate or nextUpdate >= now - skew).
std::string check_time(X509_CRL* crl, std::chrono::seconds clock_skew);

// The status of `cert` in a CRL already checked with check_issuer/check_time: revoked (reason,
// time) when listed (certificateHold too; removeFromCRL entries are good), good otherwise.
CertVerdict lookup(X509_CRL* crl, X509* cert, Source source);

// The CRL's nextUpdate (nullopt when absent).
std::optional<Clock::time_point> next_update(X509_CRL* crl);

}  // namespace mtls::revocation::crl
