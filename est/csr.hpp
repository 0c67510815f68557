// PKCS#10 certification requests signed with any EVP_PKEY (a token key through our provider
// included): only EVP_DigestSignInit_ex + X509_REQ_sign_ctx touch the key.
#pragma once

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <string>
#include <vector>

#include "common/ossl.hpp"
#include "config/config.hpp"

namespace mtls::est {

// One configured attribute or extension to put in the CSR (est/csr_extras.hpp plans them
// from [est.csr_attributes] and the server's csrattrs).
struct CsrExtra {
    std::string oid;         // dotted form
    std::string value;       // text, or "DER:<hex>" (extensions also take OpenSSL's syntax)
    bool extension = false;  // in the extensionRequest; else a PKCS#10 attribute
    std::string config_key;  // for errors: est.csr_attributes.<config_key>
};

struct CsrRequest {
    // Subject attributes, written in this order (C, ST, L, O, OU…, CN, serialNumber); empty
    // ones are left out.
    std::string country;  // two letters, PrintableString
    std::string state;
    std::string locality;
    std::string organization;
    std::vector<std::string> organizational_units;  // one RDN each
    std::string common_name;                        // required unless copy_names_from is set
    std::string serial_number;
    std::vector<std::string> dns_names;     // subjectAltName dNSName entries
    std::vector<std::string> ip_addresses;  // subjectAltName iPAddress entries (text form)
    std::vector<std::string> uris;          // subjectAltName uniformResourceIdentifier entries
    std::vector<std::string> emails;        // subjectAltName rfc822Name entries
    // simplereenroll (RFC 7030 §4.2.2): subject and subjectAltName copied verbatim from the
    // current certificate; the fields above are then ignored. Borrowed.
    X509* copy_names_from = nullptr;
    // challengePassword attribute (PoP linking: the base64 channel binding). Empty: none.
    std::string challenge_password;
    std::string digest = "SHA256";  // ignored for Ed25519/Ed448
    std::vector<CsrExtra> extra;    // configured attributes / extensions
};

// Builds and signs the CSR with `key`, then checks the signature with the public key.
// Throws ossl::Error / est::Error(config) naming what failed.
ossl::X509ReqPtr build_csr(const CsrRequest& request, EVP_PKEY* key, OSSL_LIB_CTX* libctx = nullptr,
                           const char* propq = nullptr);

std::string csr_der(X509_REQ* req);

// The subject and subjectAltName of [est] (first enrollment), with the default digest.
CsrRequest csr_request(const config::Est& est);

}  // namespace mtls::est
