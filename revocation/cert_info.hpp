// What revocation checking reads from certificates: where to ask (AIA OCSP, CRL DP), the
// identity of a certificate for the cache (issuer key hash + serial), and time conversions.
#pragma once

#include <openssl/x509.h>

#include <optional>
#include <string>
#include <vector>

#include "revocation/verdict.hpp"

namespace mtls::revocation {

// The OCSP responder URLs of the Authority Information Access extension (http only).
std::vector<std::string> ocsp_urls(X509* cert);
// The URIs (http only) of the CRL distribution points' full names.
std::vector<std::string> crl_urls(X509* cert);
// Upper-case hex SHA-1 of the issuer's subjectPublicKey (the CertID's issuerKeyHash).
std::string key_hash_hex(X509* issuer);
// Upper-case hex serial number.
std::string serial_of(const X509* cert);
// Upper-case hex of an ASN1_INTEGER serial.
std::string serial_hex(const ASN1_INTEGER* serial);
// RFC 2253 subject.
std::string subject_of(const X509* cert);
// ASN1_TIME to a time point; nullopt when null or unreadable.
std::optional<Clock::time_point> to_time_point(const ASN1_TIME* t);

}  // namespace mtls::revocation
