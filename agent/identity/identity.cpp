#include "agent/identity/identity.hpp"

#include "common/encoding.hpp"
#include "common/ossl_error.hpp"

#include <openssl/pem.h>

#include <ctime>
#include <stdexcept>

namespace mtls::identity {
namespace {

Identity::Clock::time_point to_time_point(const ASN1_TIME* t, const char* which) {
    std::tm tm{};
    if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1)
        throw ossl::Error(std::string("identity: cannot read the certificate's ") + which);
    return Identity::Clock::from_time_t(timegm(&tm));
}

std::string der_of(X509* cert) {
    unsigned char* der = nullptr;
    int len = i2d_X509(cert, &der);
    if (len <= 0) throw ossl::Error("identity: cannot DER-encode the certificate");
    std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(len));
    OPENSSL_free(der);
    return out;
}

std::string spki_der_of(EVP_PKEY* key) {
    unsigned char* der = nullptr;
    int len = i2d_PUBKEY(key, &der);
    if (len <= 0) throw ossl::Error("identity: cannot encode the public key");
    std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(len));
    OPENSSL_free(der);
    return out;
}

std::string one_line_name(X509_NAME* name) {
    ossl::Bio bio(BIO_new(BIO_s_mem()));
    if (!bio || X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253) < 0) return {};
    char* data = nullptr;
    long len = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<size_t>(len > 0 ? len : 0));
}

}  // namespace

std::shared_ptr<const Identity> Identity::create(ossl::X509Ptr leaf,
                                                 std::vector<ossl::X509Ptr> chain, ossl::PKey key,
                                                 std::string key_id, std::uint64_t generation) {
    if (!leaf) throw std::invalid_argument("identity: no leaf certificate");
    if (!key) throw std::invalid_argument("identity: no private key");
    // The certificate's public key must be the key's public half. EVP_PKEY_eq compares public
    // parts only, so it works for provider (token) keys that never reveal the private half.
    EVP_PKEY* cert_key = X509_get0_pubkey(leaf.get());
    if (cert_key == nullptr || EVP_PKEY_eq(cert_key, key.get()) != 1)
        throw ossl::Error("identity: the private key does not match the certificate's public key");

    std::shared_ptr<Identity> id(new Identity());
    id->thumb_raw_ = encoding::sha256(der_of(leaf.get()));
    id->thumb_b64url_ = encoding::base64url(id->thumb_raw_);
    id->not_before_ = to_time_point(X509_get0_notBefore(leaf.get()), "notBefore");
    id->not_after_ = to_time_point(X509_get0_notAfter(leaf.get()), "notAfter");
    id->subject_ = one_line_name(X509_get_subject_name(leaf.get()));
    id->key_id_ = key_id.empty()
                      ? encoding::hex(encoding::sha256(spki_der_of(key.get())).substr(0, 16))
                      : std::move(key_id);
    id->generation_ = generation;
    id->leaf_ = std::move(leaf);
    id->chain_ = std::move(chain);
    id->key_ = std::move(key);
    return id;
}

std::shared_ptr<const Identity> Identity::from_pem_files(const std::string& cert_chain_file,
                                                         const std::string& key_file,
                                                         std::uint64_t generation) {
    ossl::Bio cbio(BIO_new_file(cert_chain_file.c_str(), "r"));
    if (!cbio) throw ossl::Error("identity: cannot open certificate file " + cert_chain_file);
    ossl::X509Ptr leaf(PEM_read_bio_X509(cbio.get(), nullptr, nullptr, nullptr));
    if (!leaf) throw ossl::Error("identity: no PEM certificate in " + cert_chain_file);
    std::vector<ossl::X509Ptr> chain;
    for (;;) {
        ossl::X509Ptr c(PEM_read_bio_X509(cbio.get(), nullptr, nullptr, nullptr));
        if (!c) break;
        chain.push_back(std::move(c));
    }
    ossl::drain_errors();  // the end-of-file "no start line" of the loop above
    ossl::Bio kbio(BIO_new_file(key_file.c_str(), "r"));
    if (!kbio) throw ossl::Error("identity: cannot open key file " + key_file);
    ossl::PKey key(PEM_read_bio_PrivateKey(kbio.get(), nullptr, nullptr, nullptr));
    if (!key) throw ossl::Error("identity: no PEM private key in " + key_file);
    return create(std::move(leaf), std::move(chain), std::move(key), {}, generation);
}

}  // namespace mtls::identity
