// OCSP (RFC 6960, profile of RFC 5019) with OpenSSL's OCSP API: the request for one
// certificate, the check of a response (stapled or fetched), and a query of a responder.
//
// A response is accepted only when it parses, its responseStatus is successful, it is signed
// by the issuer itself or by a responder certificate the issuer issued with
// id-kp-OCSPSigning, it holds a SingleResponse for exactly this CertID (SHA-1, or SHA-256
// for liberal acceptance of stapled responses), and thisUpdate/nextUpdate hold now within
// the allowed clock skew. Anything else is `unknown` with Problem::bad_response (or
// responder_unknown for "unknown", "tryLater", "unauthorized" answers).
#pragma once

#include <openssl/x509.h>

#include <chrono>
#include <string>
#include <string_view>

#include "revocation/fetch.hpp"
#include "revocation/ossl_types.hpp"
#include "revocation/verdict.hpp"

namespace mtls::revocation::ocsp {

// A DER OCSPRequest for (cert, issuer) with a SHA-1 CertID (RFC 5019 §2.1.1); with a nonce
// when `nonce` (then keep `*out` to check it in the response). Throws ossl::Error.
std::string build_request(X509* cert, X509* issuer, bool nonce, OcspRequestPtr* out = nullptr);

// Checks a DER OCSPResponse for `cert` issued by `issuer` (see above). `request`, when given,
// is the request it answers (a nonce in it must come back unchanged). Never throws.
CertVerdict verify_response(std::string_view der, X509* cert, X509* issuer,
                            std::chrono::seconds clock_skew, OCSP_REQUEST* request = nullptr);

// POSTs a request (application/ocsp-request) to `url` and checks the answer; an
// unreachable responder is Problem::unreachable. Never throws.
CertVerdict query(const std::string& url, X509* cert, X509* issuer, const FetchLimits& limits,
                  std::chrono::seconds clock_skew, bool nonce = false);

}  // namespace mtls::revocation::ocsp
