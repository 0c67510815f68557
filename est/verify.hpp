// Checks on what the EST server issued before anyone uses it.
#pragma once

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <vector>

#include "common/ossl.hpp"

namespace mtls::est {

struct IssuedCertificate {
    ossl::X509Ptr cert;                // the leaf for our key
    std::vector<ossl::X509Ptr> chain;  // intermediates up to (not including) the trust anchor
};

// From the certificates of an enroll response: picks the one whose public key equals `key`
// (EVP_PKEY_eq), checks it is currently valid, and verifies it (purpose: TLS client) to
// `ca_certs` (the trust anchors stored from /cacerts; any of them may anchor the chain) with
// the other returned certificates as untrusted intermediates.
// Throws est::Error: key_mismatch ("certificate for another key"), cert_expired,
// cert_not_yet_valid, chain_untrusted.
IssuedCertificate verify_issued(std::vector<ossl::X509Ptr> returned, EVP_PKEY* key,
                                const std::vector<X509*>& ca_certs);

}  // namespace mtls::est
