#include "tests/support/ocsp_pki.hpp"

#include "common/ossl.hpp"

#include <stdexcept>

namespace mtls::test {
namespace {

using OcspBasic = ossl::Owned<OCSP_BASICRESP, &OCSP_BASICRESP_free>;
using OcspResponse = ossl::Owned<OCSP_RESPONSE, &OCSP_RESPONSE_free>;
using OcspCertId = ossl::Owned<OCSP_CERTID, &OCSP_CERTID_free>;

std::string ocsp_der(OCSP_RESPONSE* r) {
    unsigned char* der = nullptr;
    const int n = i2d_OCSP_RESPONSE(r, &der);
    if (n <= 0) throw std::runtime_error("cannot encode the OCSP response");
    std::string out(reinterpret_cast<char*>(der), static_cast<std::size_t>(n));
    OPENSSL_free(der);
    return out;
}

}  // namespace

std::string make_ocsp_response(X509* cert, X509* issuer, X509* signer, EVP_PKEY* key,
                               const OcspAnswer& a) {
    if (a.response_status != OCSP_RESPONSE_STATUS_SUCCESSFUL) {
        OcspResponse r(OCSP_response_create(a.response_status, nullptr));
        return ocsp_der(r.get());
    }
    OcspBasic bs(OCSP_BASICRESP_new());
    OcspCertId id(OCSP_cert_to_id(a.id_md ? a.id_md : EVP_sha1(), cert, issuer));
    ossl::Asn1Time thisupd(X509_gmtime_adj(nullptr, a.this_offset));
    ossl::Asn1Time nextupd(X509_gmtime_adj(nullptr, a.next_offset));
    ossl::Asn1Time revoked(X509_gmtime_adj(nullptr, -3600));
    if (!bs || !id ||
        !OCSP_basic_add1_status(bs.get(), id.get(), a.status, a.reason,
                                a.status == V_OCSP_CERTSTATUS_REVOKED ? revoked.get() : nullptr,
                                thisupd.get(), nextupd.get()) ||
        OCSP_basic_sign(bs.get(), signer, key, EVP_sha256(), nullptr, 0) != 1)
        throw std::runtime_error("cannot make the OCSP response");
    OcspResponse r(OCSP_response_create(OCSP_RESPONSE_STATUS_SUCCESSFUL, bs.get()));
    return ocsp_der(r.get());
}

}  // namespace mtls::test
