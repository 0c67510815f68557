#include "revocation/crl.hpp"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "common/ossl_error.hpp"
#include "revocation/cert_info.hpp"

namespace mtls::revocation::crl {
namespace {

SharedCrl share_crl(X509_CRL* c) {
    return SharedCrl(c, [](X509_CRL* p) { X509_CRL_free(p); });
}

}  // namespace

std::vector<SharedCrl> parse(std::string_view data) {
    std::vector<SharedCrl> out;
    if (data.empty() || data.size() > (256u << 20)) return out;
    if (data.find("-----BEGIN X509 CRL-----") != std::string_view::npos) {
        ossl::Bio bio(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
        while (bio) {
            X509_CRL* c = PEM_read_bio_X509_CRL(bio.get(), nullptr, nullptr, nullptr);
            if (!c) break;
            out.push_back(share_crl(c));
        }
    } else {
        const auto* p = reinterpret_cast<const unsigned char*>(data.data());
        if (X509_CRL* c = d2i_X509_CRL(nullptr, &p, static_cast<long>(data.size())))
            out.push_back(share_crl(c));
    }
    ERR_clear_error();
    return out;
}

std::string check_issuer(X509_CRL* crl, X509* issuer) {
    if (X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_subject_name(issuer)) != 0)
        return "the CRL's issuer is not the certificate's issuer";
    EVP_PKEY* key = X509_get0_pubkey(issuer);
    if (!key || X509_CRL_verify(crl, key) != 1) {
        ERR_clear_error();
        return "the CRL's signature does not verify with the issuer's key";
    }
    if ((X509_get_extension_flags(issuer) & EXFLAG_KUSAGE) &&
        !(X509_get_key_usage(issuer) & KU_CRL_SIGN))
        return "the issuer's key usage does not allow CRL signing";
    for (int i = 0; i < X509_CRL_get_ext_count(crl); ++i) {
        X509_EXTENSION* ext = X509_CRL_get_ext(crl, i);
        const int nid = OBJ_obj2nid(X509_EXTENSION_get_object(ext));
        if (nid == NID_delta_crl) return "delta CRLs are not supported";
        if (X509_EXTENSION_get_critical(ext) && nid != NID_issuing_distribution_point)
            return "the CRL has an unsupported critical extension";
    }
    return {};
}

std::string check_time(X509_CRL* crl, std::chrono::seconds clock_skew) {
    const auto now = Clock::now();
    const auto this_upd = to_time_point(X509_CRL_get0_lastUpdate(crl));
    if (!this_upd) return "the CRL has no readable thisUpdate";
    if (*this_upd > now + clock_skew) return "the CRL's thisUpdate is in the future";
    if (const auto next = next_update(crl); next && *next < now - clock_skew)
        return "the CRL expired at " + iso_time(*next) + " (nextUpdate)";
    return {};
}

std::optional<Clock::time_point> next_update(X509_CRL* crl) {
    return to_time_point(X509_CRL_get0_nextUpdate(crl));
}

CertVerdict lookup(X509_CRL* crl, X509* cert, Source source) {
    CertVerdict v;
    v.source = source;
    v.origin = source;
    v.subject = subject_of(cert);
    v.serial = serial_of(cert);
    v.this_update = to_time_point(X509_CRL_get0_lastUpdate(crl));
    v.next_update = next_update(crl);
    X509_REVOKED* rev = nullptr;
    const int r = X509_CRL_get0_by_serial(crl, &rev, X509_get0_serialNumber(cert));
    if (r == 1 && rev) {
        v.status = Status::revoked;
        v.revoked_at = to_time_point(X509_REVOKED_get0_revocationDate(rev));
        int crit = 0;
        if (auto* e = static_cast<ASN1_ENUMERATED*>(
                X509_REVOKED_get_ext_d2i(rev, NID_crl_reason, &crit, nullptr))) {
            v.reason = static_cast<int>(ASN1_ENUMERATED_get(e));
            ASN1_ENUMERATED_free(e);
        }
    } else {
        v.status = Status::good;
    }
    ERR_clear_error();
    return v;
}

}  // namespace mtls::revocation::crl
