#include "tests/support/test_pki.hpp"

#include <openssl/pem.h>
#include <openssl/rand.h>

#include <fstream>
#include <stdexcept>

#include "common/ossl_error.hpp"

namespace mtls::test {

namespace {

void add_ext(X509* cert, X509* issuer, int nid, const char* value) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
    ossl::X509ExtPtr ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value));
    if (!ext || !X509_add_ext(cert, ext.get(), -1))
        throw ossl::Error("cannot add a certificate extension");
}

ossl::X509Ptr new_cert(EVP_PKEY* pub, const std::string& cn, X509_NAME* issuer_name) {
    ossl::X509Ptr x(X509_new());
    if (!x) throw ossl::Error("X509_new");
    X509_set_version(x.get(), X509_VERSION_3);
    unsigned char serial[16];
    RAND_bytes(serial, sizeof serial);
    serial[0] &= 0x7f;
    ossl::BigNum bn(BN_bin2bn(serial, sizeof serial, nullptr));
    ossl::Asn1Integer ai(BN_to_ASN1_INTEGER(bn.get(), nullptr));
    X509_set_serialNumber(x.get(), ai.get());
    X509_gmtime_adj(X509_getm_notBefore(x.get()), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x.get()), 86400);
    ossl::X509NamePtr name(X509_NAME_new());
    X509_NAME_add_entry_by_txt(name.get(), "CN", MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
    X509_set_subject_name(x.get(), name.get());
    X509_set_issuer_name(x.get(), issuer_name ? issuer_name : name.get());
    if (!X509_set_pubkey(x.get(), pub)) throw ossl::Error("X509_set_pubkey");
    return x;
}

}  // namespace

ossl::PKey make_software_key(const std::string& type) {
    EVP_PKEY* pk = type == "RSA"
                       ? EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(2048))
                       : EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
    if (!pk) throw ossl::Error("cannot generate a " + type + " test key");
    return ossl::PKey(pk);
}

TestCa make_test_ca(const std::string& common_name) {
    TestCa ca;
    ca.key = make_software_key("EC");
    ca.cert = new_cert(ca.key.get(), common_name, nullptr);
    add_ext(ca.cert.get(), ca.cert.get(), NID_basic_constraints, "critical,CA:TRUE");
    add_ext(ca.cert.get(), ca.cert.get(), NID_key_usage, "critical,keyCertSign,cRLSign");
    add_ext(ca.cert.get(), ca.cert.get(), NID_subject_key_identifier, "hash");
    if (!X509_sign(ca.cert.get(), ca.key.get(), EVP_sha256()))
        throw ossl::Error("cannot sign the CA");
    return ca;
}

ossl::X509Ptr issue_cert(const TestCa& ca, EVP_PKEY* pub, const std::string& common_name,
                         CertUsage usage) {
    auto x = new_cert(pub, common_name, X509_get_subject_name(ca.cert.get()));
    add_ext(x.get(), ca.cert.get(), NID_basic_constraints, "critical,CA:FALSE");
    add_ext(x.get(), ca.cert.get(), NID_key_usage, "critical,digitalSignature,keyEncipherment");
    add_ext(x.get(), ca.cert.get(), NID_authority_key_identifier, "keyid");
    if (usage == CertUsage::server) {
        add_ext(x.get(), ca.cert.get(), NID_ext_key_usage, "serverAuth");
        add_ext(x.get(), ca.cert.get(), NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1");
    } else {
        add_ext(x.get(), ca.cert.get(), NID_ext_key_usage, "clientAuth");
    }
    if (!X509_sign(x.get(), ca.key.get(), EVP_sha256()))
        throw ossl::Error("cannot sign a test certificate");
    return x;
}

std::string to_pem(X509* cert) {
    ossl::Bio b(BIO_new(BIO_s_mem()));
    if (!PEM_write_bio_X509(b.get(), cert)) throw ossl::Error("PEM_write_bio_X509");
    char* data = nullptr;
    const long n = BIO_get_mem_data(b.get(), &data);
    return std::string(data, static_cast<size_t>(n));
}

std::string to_pem(EVP_PKEY* key) {
    ossl::Bio b(BIO_new(BIO_s_mem()));
    if (!PEM_write_bio_PrivateKey(b.get(), key, nullptr, nullptr, 0, nullptr, nullptr))
        throw ossl::Error("PEM_write_bio_PrivateKey");
    char* data = nullptr;
    const long n = BIO_get_mem_data(b.get(), &data);
    return std::string(data, static_cast<size_t>(n));
}

std::string to_der(X509* cert) {
    unsigned char* der = nullptr;
    const int n = i2d_X509(cert, &der);
    if (n <= 0) throw ossl::Error("i2d_X509");
    std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(n));
    OPENSSL_free(der);
    return out;
}

void write_file(const std::string& path, const std::string& data) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << data;
    if (!out) throw std::runtime_error("cannot write " + path);
}

}  // namespace mtls::test
