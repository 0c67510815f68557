#include "tests/est/test_pki.hpp"

#include <openssl/pkcs7.h>
#include <openssl/x509v3.h>

#include <atomic>
#include <stdexcept>

#include "common/ossl_error.hpp"

namespace mtls::est::testing {
namespace {

std::atomic<long> serial{1000};

void add_ext(X509* cert, X509* issuer, int nid, const char* value) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
    ossl::X509ExtPtr ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value));
    if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) throw ossl::Error("add extension");
}

ossl::X509Ptr make_cert(EVP_PKEY* subject_key, const std::string& cn, X509* issuer_cert,
                        EVP_PKEY* issuer_key, bool ca, std::chrono::seconds nb,
                        std::chrono::seconds na) {
    ossl::X509Ptr x(X509_new());
    X509_set_version(x.get(), X509_VERSION_3);
    ASN1_INTEGER_set(X509_get_serialNumber(x.get()), serial++);
    X509_gmtime_adj(X509_getm_notBefore(x.get()), static_cast<long>(nb.count()));
    X509_gmtime_adj(X509_getm_notAfter(x.get()), static_cast<long>(na.count()));
    X509_NAME_add_entry_by_NID(X509_get_subject_name(x.get()), NID_commonName, MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
    X509_set_issuer_name(
        x.get(), issuer_cert ? X509_get_subject_name(issuer_cert) : X509_get_subject_name(x.get()));
    X509_set_pubkey(x.get(), subject_key);
    X509* iss = issuer_cert ? issuer_cert : x.get();
    if (ca) {
        add_ext(x.get(), iss, NID_basic_constraints, "critical,CA:TRUE");
        add_ext(x.get(), iss, NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
        add_ext(x.get(), iss, NID_basic_constraints, "critical,CA:FALSE");
        add_ext(x.get(), iss, NID_ext_key_usage, "clientAuth");
    }
    add_ext(x.get(), iss, NID_subject_key_identifier, "hash");
    if (X509_sign(x.get(), issuer_key, EVP_sha256()) <= 0) throw ossl::Error("X509_sign");
    return x;
}

}  // namespace

ossl::PKey ec_key(const char* curve) {
    ossl::PKey k(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", curve));
    if (!k) throw ossl::Error("EC keygen");
    return k;
}

ossl::PKey rsa_key(unsigned bits) {
    ossl::PKey k(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(bits)));
    if (!k) throw ossl::Error("RSA keygen");
    return k;
}

ossl::PKey ed25519_key() {
    ossl::PKey k(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
    if (!k) throw ossl::Error("Ed25519 keygen");
    return k;
}

Ca make_ca(const std::string& cn, const Ca* issuer) {
    Ca ca;
    ca.key = ec_key();
    ca.cert = make_cert(ca.key.get(), cn, issuer ? issuer->cert.get() : nullptr,
                        issuer ? issuer->key.get() : ca.key.get(), true,
                        std::chrono::seconds(-3600), std::chrono::hours(24 * 30));
    return ca;
}

ossl::X509Ptr issue(const Ca& ca, EVP_PKEY* key, const std::string& cn, std::chrono::seconds nb,
                    std::chrono::seconds na) {
    return make_cert(key, cn, ca.cert.get(), ca.key.get(), false, nb, na);
}

std::string pkcs7_der(const std::vector<X509*>& certs, const std::string& content) {
    ossl::Pkcs7 p7(PKCS7_new());
    if (!p7 || PKCS7_set_type(p7.get(), NID_pkcs7_signed) != 1 ||
        PKCS7_content_new(p7.get(), NID_pkcs7_data) != 1)
        throw ossl::Error("PKCS7 build");
    if (!content.empty())
        ASN1_OCTET_STRING_set(p7->d.sign->contents->d.data,
                              reinterpret_cast<const unsigned char*>(content.data()),
                              static_cast<int>(content.size()));
    for (X509* c : certs) PKCS7_add_certificate(p7.get(), c);
    unsigned char* out = nullptr;
    int n = i2d_PKCS7(p7.get(), &out);
    if (n <= 0) throw ossl::Error("i2d_PKCS7");
    std::string s(reinterpret_cast<char*>(out), static_cast<size_t>(n));
    OPENSSL_free(out);
    return s;
}

std::string der(X509* x) {
    unsigned char* out = nullptr;
    int n = i2d_X509(x, &out);
    std::string s(reinterpret_cast<char*>(out), static_cast<size_t>(n));
    OPENSSL_free(out);
    return s;
}

}  // namespace mtls::est::testing
