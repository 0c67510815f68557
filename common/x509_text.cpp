#include "common/x509_text.hpp"

#include "common/ossl.hpp"
#include "common/ossl_error.hpp"

#include <openssl/bn.h>
#include <openssl/pem.h>

namespace mtls::x509text {

std::string serial_hex(const X509* cert) {
    const ASN1_INTEGER* s = cert ? X509_get0_serialNumber(cert) : nullptr;
    ossl::BigNum bn(s ? ASN1_INTEGER_to_BN(s, nullptr) : nullptr);
    char* hex = bn ? BN_bn2hex(bn.get()) : nullptr;
    std::string out(hex ? hex : "");
    OPENSSL_free(hex);
    return out;
}

std::string pem(const std::vector<X509*>& certs) {
    ossl::Bio bio(BIO_new(BIO_s_mem()));
    if (!bio) throw ossl::Error("BIO_new");
    for (X509* c : certs)
        if (PEM_write_bio_X509(bio.get(), c) != 1) throw ossl::Error("PEM_write_bio_X509");
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio.get(), &data);
    return n > 0 ? std::string(data, static_cast<std::size_t>(n)) : std::string();
}

}  // namespace mtls::x509text
