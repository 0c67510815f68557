// Test helper: OCSP responses made with OpenSSL, for the revocation tests and benchmarks
// (what a responder would answer, signed by whom the test says).
#pragma once

#include <openssl/ocsp.h>
#include <openssl/x509.h>

#include <string>

namespace mtls::test {

struct OcspAnswer {
    int status = V_OCSP_CERTSTATUS_GOOD;
    int reason = -1;                                        // for revoked: OCSP_REVOKED_STATUS_*
    long this_offset = -60;                                 // thisUpdate = now + this (seconds)
    long next_offset = 3600;                                // nextUpdate = now + this
    const EVP_MD* id_md = nullptr;                          // CertID hash (null: SHA-1)
    int response_status = OCSP_RESPONSE_STATUS_SUCCESSFUL;  // else: no body, this status
};

// A DER OCSPResponse about `cert` (issued by `issuer`), signed by `signer` with `key`.
std::string make_ocsp_response(X509* cert, X509* issuer, X509* signer, EVP_PKEY* key,
                               const OcspAnswer& answer = {});

}  // namespace mtls::test
