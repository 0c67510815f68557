#include "tests/sandbox/pem.hpp"

#include "common/atomic_file.hpp"
#include "common/encoding.hpp"
#include "common/ossl_error.hpp"

#include <openssl/pem.h>

#include <ctime>
#include <stdexcept>

namespace mtls::sandbox {
namespace {

std::string bio_string(BIO* bio) {
    char* data = nullptr;
    long n = BIO_get_mem_data(bio, &data);
    return std::string(data, static_cast<size_t>(n));
}

ossl::Bio mem_bio() {
    ossl::Bio b(BIO_new(BIO_s_mem()));
    if (!b) throw ossl::Error("BIO_new failed");
    return b;
}

}  // namespace

std::string cert_to_pem(X509* cert) {
    auto b = mem_bio();
    if (PEM_write_bio_X509(b.get(), cert) != 1) throw ossl::Error("PEM_write_bio_X509 failed");
    return bio_string(b.get());
}

std::string cert_to_der(X509* cert) {
    unsigned char* der = nullptr;
    int n = i2d_X509(cert, &der);
    if (n <= 0) throw ossl::Error("i2d_X509 failed");
    std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(n));
    OPENSSL_free(der);
    return out;
}

std::string key_to_pem(EVP_PKEY* key) {
    auto b = mem_bio();
    if (PEM_write_bio_PrivateKey(b.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1)
        throw ossl::Error("PEM_write_bio_PrivateKey failed");
    return bio_string(b.get());
}

ossl::X509Ptr cert_from_pem(const std::string& pem) {
    ossl::Bio b(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    ossl::X509Ptr c(PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr));
    if (!c) throw ossl::Error("not a PEM certificate");
    return c;
}

ossl::X509Ptr cert_from_der(const std::string& der) {
    auto p = reinterpret_cast<const unsigned char*>(der.data());
    ossl::X509Ptr c(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
    if (!c) throw ossl::Error("not a DER certificate");
    return c;
}

std::vector<ossl::X509Ptr> certs_from_file(const std::filesystem::path& path) {
    auto text = files::read_all(path);
    ossl::Bio b(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
    std::vector<ossl::X509Ptr> out;
    while (X509* c = PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr)) out.emplace_back(c);
    ossl::drain_errors();  // the end-of-file "no start line"
    if (out.empty()) throw std::runtime_error("no PEM certificate in " + path.string());
    return out;
}

ossl::PKey key_from_file(const std::filesystem::path& path) {
    auto text = files::read_all(path);
    ossl::Bio b(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
    ossl::PKey k(PEM_read_bio_PrivateKey(b.get(), nullptr, nullptr, nullptr));
    if (!k) throw ossl::Error("cannot read private key " + path.string());
    return k;
}

std::string x5t_s256(X509* cert) {
    return encoding::base64url(encoding::sha256(cert_to_der(cert)));
}

std::string subject_rfc4514(const X509_NAME* name) {
    auto b = mem_bio();
    X509_NAME_print_ex(b.get(), name, 0, XN_FLAG_RFC2253);
    return bio_string(b.get());
}

std::string name_entry(const X509_NAME* name, int nid) {
    int i = X509_NAME_get_index_by_NID(name, nid, -1);
    if (i < 0) return {};
    ASN1_STRING* s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
    unsigned char* utf8 = nullptr;
    int n = ASN1_STRING_to_UTF8(&utf8, s);
    if (n < 0) return {};
    std::string out(reinterpret_cast<char*>(utf8), static_cast<size_t>(n));
    OPENSSL_free(utf8);
    return out;
}

std::string serial_hex(X509* cert) {
    ossl::BigNum bn(ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr));
    if (!bn) return {};
    char* hex = BN_bn2hex(bn.get());
    std::string out(hex ? hex : "");
    OPENSSL_free(hex);
    return out;
}

std::string asn1_time_iso(const ASN1_TIME* t) {
    struct tm tm {};
    if (ASN1_TIME_to_tm(t, &tm) != 1) return {};
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

ossl::PKey new_p256_key() {
    ossl::PKey k(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
    if (!k) throw ossl::Error("EC P-256 key generation failed");
    return k;
}

}  // namespace mtls::sandbox
