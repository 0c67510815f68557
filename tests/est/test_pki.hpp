// A throw-away in-memory PKI for the EST parser and verification tests: keys, a root and an
// issuing CA, leaf certificates with chosen validity, and PKCS#7 certs-only encodings.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "common/ossl.hpp"

namespace mtls::est::testing {

ossl::PKey ec_key(const char* curve = "P-256");
ossl::PKey rsa_key(unsigned bits = 2048);
ossl::PKey ed25519_key();

struct Ca {
    ossl::PKey key;
    ossl::X509Ptr cert;
};

// Self-signed root when `issuer` is null, else an intermediate signed by it.
Ca make_ca(const std::string& cn, const Ca* issuer = nullptr);

// A leaf for `key`, valid from now+not_before to now+not_after.
ossl::X509Ptr issue(const Ca& ca, EVP_PKEY* key, const std::string& cn,
                    std::chrono::seconds not_before = std::chrono::seconds(-60),
                    std::chrono::seconds not_after = std::chrono::hours(24));

// DER of a degenerate SignedData holding `certs`; `content` non-empty puts eContent in.
std::string pkcs7_der(const std::vector<X509*>& certs, const std::string& content = {});

std::string der(X509* x);

}  // namespace mtls::est::testing
