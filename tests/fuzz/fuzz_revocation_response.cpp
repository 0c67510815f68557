// Fuzz target: what revocation/ reads from the network — OCSP responses (stapled in a TLS
// handshake or fetched from a responder) and CRLs (DER or PEM from a distribution point).
// Every input must end in a verdict or "no CRL"; nothing may crash, leak or throw. The first
// byte picks the parser; a fixed issuer and leaf (made once) are what the input is checked
// against.
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "common/ossl.hpp"
#include "revocation/crl.hpp"
#include "revocation/ocsp.hpp"

namespace {

struct FuzzPki {
    mtls::ossl::PKey key;
    mtls::ossl::X509Ptr issuer, leaf;
};

mtls::ossl::X509Ptr fuzz_cert(const char* cn, long serial, EVP_PKEY* key, X509* issuer,
                              EVP_PKEY* sign_key) {
    mtls::ossl::X509Ptr c(X509_new());
    X509_set_version(c.get(), X509_VERSION_3);
    ASN1_INTEGER_set(X509_get_serialNumber(c.get()), serial);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(c.get()), "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>(cn), -1, -1, 0);
    X509_set_issuer_name(c.get(),
                         issuer ? X509_get_subject_name(issuer) : X509_get_subject_name(c.get()));
    X509_gmtime_adj(X509_getm_notBefore(c.get()), -3600);
    X509_gmtime_adj(X509_getm_notAfter(c.get()), 86400);
    X509_set_pubkey(c.get(), key);
    X509_sign(c.get(), sign_key, EVP_sha256());
    return c;
}

const FuzzPki& fuzz_pki() {
    static const FuzzPki pki = [] {
        FuzzPki p;
        p.key.reset(EVP_EC_gen("P-256"));
        p.issuer = fuzz_cert("fuzz CA", 1, p.key.get(), nullptr, p.key.get());
        p.leaf = fuzz_cert("fuzz leaf", 2, p.key.get(), p.issuer.get(), p.key.get());
        return p;
    }();
    return pki;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const auto& pki = fuzz_pki();
    std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
    if (data[0] % 2 == 0) {
        auto v = mtls::revocation::ocsp::verify_response(in, pki.leaf.get(), pki.issuer.get(),
                                                         std::chrono::seconds(300));
        // Only the fixed issuer's key could sign a good or revoked answer: the fuzzer cannot.
        if (v.status != mtls::revocation::Status::unknown) std::abort();
    } else {
        for (auto& crl : mtls::revocation::crl::parse(in)) {
            if (!crl) std::abort();
            (void)mtls::revocation::crl::check_time(crl.get(), std::chrono::seconds(300));
            if (mtls::revocation::crl::check_issuer(crl.get(), pki.issuer.get()).empty())
                std::abort();  // a valid signature by the fixed key: not reachable by fuzzing
            (void)mtls::revocation::crl::lookup(crl.get(), pki.leaf.get(),
                                                mtls::revocation::Source::crl);
        }
    }
    return 0;
}
