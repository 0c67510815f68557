// Checks on what the EST server issued before anyone uses it.
#pragma once

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <vector>

#include "common/ossl.hpp"

namespace mtls::est {

struct IssuedCertificate {
    ossl::X509Ptr cert;                // the leaf for our key
    std::vector<ossl::X509Ptr> chain;  // intermediates, leaf's issuer first, up to (not
                                       // including) the self-signed root
};

// From the certificates of an enroll response: picks the one whose public key equals `key`
// (EVP_PKEY_eq), checks it is currently valid, and verifies it (purpose: TLS client) to
// `ca_certs` (the trust anchors stored from /cacerts; any of them may anchor the chain) with
// the other returned certificates as untrusted intermediates.
// Throws est::Error: key_mismatch ("certificate for another key"), cert_expired,
// cert_not_yet_valid, chain_untrusted.
IssuedCertificate verify_issued(std::vector<ossl::X509Ptr> returned, EVP_PKEY* key,
                                const std::vector<X509*>& ca_certs);

// The chain a TLS peer needs to reach the root from `leaf`: every intermediate, leaf's
// issuer first, up to and not including the self-signed root. Built from `untrusted` (e.g.
// what an enrollment returned) and `ca_certs` (/cacerts: RFC 7030 §4.1.3 has the server
// send everything a client needs to build that chain), and verified (purpose: TLS client)
// to a root among `ca_certs` — or, when `ca_certs` holds no root, to the highest of them.
// A stored issuing CA is sent, never treated as the end of the chain: a partner that trusts
// only the root must still be able to build the path. Throws est::Error(chain_untrusted).
std::vector<ossl::X509Ptr> build_chain(X509* leaf, const std::vector<X509*>& untrusted,
                                       const std::vector<X509*>& ca_certs);

}  // namespace mtls::est
