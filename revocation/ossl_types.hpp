// RAII owners for the OpenSSL OCSP and CRL handles the revocation part uses.
#pragma once

#include <openssl/ocsp.h>
#include <openssl/x509.h>

#include "common/ossl.hpp"

namespace mtls::revocation {

using OcspRequestPtr = ossl::Owned<OCSP_REQUEST, &OCSP_REQUEST_free>;
using OcspResponsePtr = ossl::Owned<OCSP_RESPONSE, &OCSP_RESPONSE_free>;
using OcspBasicPtr = ossl::Owned<OCSP_BASICRESP, &OCSP_BASICRESP_free>;
using OcspCertIdPtr = ossl::Owned<OCSP_CERTID, &OCSP_CERTID_free>;
using CrlPtr = ossl::Owned<X509_CRL, &X509_CRL_free>;

}  // namespace mtls::revocation
