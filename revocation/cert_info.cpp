#include "revocation/cert_info.hpp"

#include <openssl/ocsp.h>
#include <openssl/x509v3.h>

#include <ctime>

#include "common/ossl.hpp"

namespace mtls::revocation {
namespace {

bool is_http_url(const std::string& u) {
    return u.size() > 7 && (u.compare(0, 7, "http://") == 0 || u.compare(0, 7, "HTTP://") == 0);
}

std::string to_hex_upper(const unsigned char* p, std::size_t n) {
    static const char* digits = "0123456789ABCDEF";
    std::string s;
    s.reserve(n * 2);
    for (std::size_t i = 0; i < n; ++i) {
        s += digits[p[i] >> 4];
        s += digits[p[i] & 15];
    }
    return s;
}

}  // namespace

std::vector<std::string> ocsp_urls(X509* cert) {
    std::vector<std::string> out;
    STACK_OF(OPENSSL_STRING)* s = X509_get1_ocsp(cert);
    for (int i = 0; s && i < sk_OPENSSL_STRING_num(s); ++i) {
        std::string u = sk_OPENSSL_STRING_value(s, i);
        if (is_http_url(u)) out.push_back(std::move(u));
    }
    X509_email_free(s);
    return out;
}

std::vector<std::string> crl_urls(X509* cert) {
    std::vector<std::string> out;
    auto* dps = static_cast<STACK_OF(DIST_POINT)*>(
        X509_get_ext_d2i(cert, NID_crl_distribution_points, nullptr, nullptr));
    if (!dps) return out;
    for (int i = 0; i < sk_DIST_POINT_num(dps); ++i) {
        DIST_POINT* dp = sk_DIST_POINT_value(dps, i);
        if (!dp->distpoint || dp->distpoint->type != 0) continue;  // fullName only
        GENERAL_NAMES* names = dp->distpoint->name.fullname;
        for (int j = 0; j < sk_GENERAL_NAME_num(names); ++j) {
            GENERAL_NAME* gn = sk_GENERAL_NAME_value(names, j);
            if (gn->type != GEN_URI) continue;
            const ASN1_IA5STRING* uri = gn->d.uniformResourceIdentifier;
            std::string u(reinterpret_cast<const char*>(ASN1_STRING_get0_data(uri)),
                          static_cast<std::size_t>(ASN1_STRING_length(uri)));
            if (is_http_url(u) && u.find('\0') == std::string::npos) out.push_back(std::move(u));
        }
    }
    sk_DIST_POINT_pop_free(dps, DIST_POINT_free);
    return out;
}

std::string key_hash_hex(X509* issuer) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (X509_pubkey_digest(issuer, EVP_sha1(), md, &len) != 1) return {};
    return to_hex_upper(md, len);
}

std::string serial_hex(const ASN1_INTEGER* serial) {
    if (!serial) return {};
    ossl::BigNum bn(ASN1_INTEGER_to_BN(serial, nullptr));
    if (!bn) return {};
    char* hex = BN_bn2hex(bn.get());
    if (!hex) return {};
    std::string s = hex;
    OPENSSL_free(hex);
    return s;
}

std::string serial_of(const X509* cert) {
    return serial_hex(X509_get0_serialNumber(cert));
}

std::string subject_of(const X509* cert) {
    ossl::Bio b(BIO_new(BIO_s_mem()));
    if (!b || X509_NAME_print_ex(b.get(), X509_get_subject_name(cert), 0, XN_FLAG_RFC2253) < 0)
        return {};
    char* p = nullptr;
    long n = BIO_get_mem_data(b.get(), &p);
    return std::string(p, static_cast<std::size_t>(n > 0 ? n : 0));
}

std::optional<Clock::time_point> to_time_point(const ASN1_TIME* t) {
    if (!t) return std::nullopt;
    std::tm tm{};
    if (ASN1_TIME_to_tm(t, &tm) != 1) return std::nullopt;
    return Clock::from_time_t(timegm(&tm));
}

}  // namespace mtls::revocation
