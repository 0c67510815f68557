#include "revocation/ocsp.hpp"

#include <openssl/err.h>

#include "common/ossl_error.hpp"
#include "revocation/cert_info.hpp"

#include <array>

namespace mtls::revocation::ocsp {
namespace {

CertVerdict ocsp_base(X509* cert) {
    CertVerdict v;
    v.status = Status::unknown;
    v.source = Source::ocsp;
    v.origin = Source::ocsp;
    v.subject = subject_of(cert);
    v.serial = serial_of(cert);
    return v;
}

CertVerdict ocsp_fail(CertVerdict v, Problem p, std::string why) {
    v.status = Status::unknown;
    v.problem = p;
    v.why = std::move(why);
    ERR_clear_error();
    return v;
}

}  // namespace

std::string build_request(X509* cert, X509* issuer, bool nonce, OcspRequestPtr* out) {
    OcspRequestPtr req(OCSP_REQUEST_new());
    if (!req) throw ossl::Error("OCSP_REQUEST_new");
    OCSP_CERTID* id = OCSP_cert_to_id(EVP_sha1(), cert, issuer);
    if (!id) throw ossl::Error("cannot make the OCSP CertID");
    if (!OCSP_request_add0_id(req.get(), id)) {
        OCSP_CERTID_free(id);
        throw ossl::Error("OCSP_request_add0_id");
    }
    if (nonce && OCSP_request_add1_nonce(req.get(), nullptr, -1) != 1)
        throw ossl::Error("cannot add an OCSP nonce");
    unsigned char* der = nullptr;
    const int len = i2d_OCSP_REQUEST(req.get(), &der);
    if (len <= 0) throw ossl::Error("cannot encode the OCSP request");
    std::string s(reinterpret_cast<const char*>(der), static_cast<std::size_t>(len));
    OPENSSL_free(der);
    if (out) *out = std::move(req);
    return s;
}

CertVerdict verify_response(std::string_view der, X509* cert, X509* issuer,
                            std::chrono::seconds clock_skew, OCSP_REQUEST* request) {
    CertVerdict v = ocsp_base(cert);
    if (der.empty() || der.size() > (64u << 20))
        return ocsp_fail(std::move(v), Problem::bad_response, "empty OCSP response");
    const auto* p = reinterpret_cast<const unsigned char*>(der.data());
    OcspResponsePtr resp(d2i_OCSP_RESPONSE(nullptr, &p, static_cast<long>(der.size())));
    if (!resp) return ocsp_fail(std::move(v), Problem::bad_response, "not a DER OCSP response");
    const int rs = OCSP_response_status(resp.get());
    if (rs != OCSP_RESPONSE_STATUS_SUCCESSFUL)
        return ocsp_fail(std::move(v), Problem::responder_unknown,
                         std::string("the responder answered ") + OCSP_response_status_str(rs));
    OcspBasicPtr bs(OCSP_response_get1_basic(resp.get()));
    if (!bs) return ocsp_fail(std::move(v), Problem::bad_response, "not a basic OCSP response");
    if (request && OCSP_check_nonce(request, bs.get()) == 0)
        return ocsp_fail(std::move(v), Problem::bad_response,
                         "the response's nonce is not the request's");

    // Signed by the issuer, or by a responder the issuer issued with id-kp-OCSPSigning
    // (OpenSSL's ocsp_check_issuer). The issuer is the trust anchor here: its own chain was
    // verified by the TLS handshake.
    ossl::X509StorePtr store(X509_STORE_new());
    ossl::X509Stack certs(sk_X509_new_null());
    if (!store || !certs || X509_STORE_add_cert(store.get(), issuer) != 1 ||
        X509_STORE_set_flags(store.get(), X509_V_FLAG_PARTIAL_CHAIN) != 1 ||
        X509_up_ref(issuer) != 1)
        return ocsp_fail(std::move(v), Problem::bad_response, "out of memory");
    if (!sk_X509_push(certs.get(), issuer)) {
        X509_free(issuer);
        return ocsp_fail(std::move(v), Problem::bad_response, "out of memory");
    }
    if (OCSP_basic_verify(bs.get(), certs.get(), store.get(), 0) <= 0)
        return ocsp_fail(std::move(v), Problem::bad_response,
                         "the response is not signed by the issuer or its OCSP responder: " +
                             ossl::drain_errors());

    int status = -1, reason = -1;
    ASN1_GENERALIZEDTIME *rev = nullptr, *thisupd = nullptr, *nextupd = nullptr;
    bool found = false;
    const std::array<const EVP_MD*, 2> mds = {EVP_sha1(), EVP_sha256()};
    for (const EVP_MD* md : mds) {
        OcspCertIdPtr id(OCSP_cert_to_id(md, cert, issuer));
        if (id && OCSP_resp_find_status(bs.get(), id.get(), &status, &reason, &rev, &thisupd,
                                        &nextupd) == 1) {
            found = true;
            break;
        }
    }
    if (!found)
        return ocsp_fail(std::move(v), Problem::bad_response,
                         "the response holds no status for this certificate");
    if (OCSP_check_validity(thisupd, nextupd, static_cast<long>(clock_skew.count()), -1) != 1)
        return ocsp_fail(
            std::move(v), Problem::bad_response,
            "the response is not current (thisUpdate/nextUpdate): " + ossl::drain_errors());
    v.this_update = to_time_point(thisupd);
    v.next_update = to_time_point(nextupd);
    switch (status) {
        case V_OCSP_CERTSTATUS_GOOD:
            v.status = Status::good;
            break;
        case V_OCSP_CERTSTATUS_REVOKED:
            v.status = Status::revoked;
            v.reason = reason == OCSP_REVOKED_STATUS_NOSTATUS ? -1 : reason;
            v.revoked_at = to_time_point(rev);
            break;
        default:
            v.status = Status::unknown;
            v.problem = Problem::responder_unknown;
            v.why = "the responder does not know this certificate";
            break;
    }
    return v;
}

CertVerdict query(const std::string& url, X509* cert, X509* issuer, const FetchLimits& limits,
                  std::chrono::seconds clock_skew, bool nonce) {
    OcspRequestPtr req;
    std::string body;
    try {
        body = build_request(cert, issuer, nonce, &req);
    } catch (const std::exception& e) {
        return ocsp_fail(ocsp_base(cert), Problem::bad_response, e.what());
    }
    std::string answer;
    try {
        answer = http_fetch(url, body, "application/ocsp-request", limits);
    } catch (const std::exception& e) {
        return ocsp_fail(ocsp_base(cert), Problem::unreachable, e.what());
    }
    return verify_response(answer, cert, issuer, clock_skew, nonce ? req.get() : nullptr);
}

}  // namespace mtls::revocation::ocsp
