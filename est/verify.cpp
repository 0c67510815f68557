#include "est/verify.hpp"

#include <openssl/err.h>
#include <openssl/x509_vfy.h>

#include "common/ossl_error.hpp"
#include "est/errors.hpp"

namespace mtls::est {
namespace {

std::string subject(X509* x) {
    ossl::Bio bio(BIO_new(BIO_s_mem()));
    X509_NAME_print_ex(bio.get(), X509_get_subject_name(x), 0, XN_FLAG_RFC2253);
    char* data = nullptr;
    long n = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<std::size_t>(n));
}

std::string time_text(const ASN1_TIME* t) {
    ossl::Bio bio(BIO_new(BIO_s_mem()));
    ASN1_TIME_print(bio.get(), t);
    char* data = nullptr;
    long n = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<std::size_t>(n));
}

}  // namespace

IssuedCertificate verify_issued(std::vector<ossl::X509Ptr> returned, EVP_PKEY* key,
                                const std::vector<X509*>& ca_certs) {
    IssuedCertificate out;
    std::vector<ossl::X509Ptr> others;
    for (auto& c : returned) {
        if (!out.cert && EVP_PKEY_eq(X509_get0_pubkey(c.get()), key) == 1)
            out.cert = std::move(c);
        else
            others.push_back(std::move(c));
    }
    ERR_clear_error();
    if (!out.cert) {
        std::string subjects;
        for (auto& c : others)
            subjects += (subjects.empty() ? "\"" : ", \"") + subject(c.get()) + "\"";
        throw Error(Error::Kind::key_mismatch,
                    "EST server returned a certificate for another key: none of the " +
                        std::to_string(others.size()) + " returned certificates (" + subjects +
                        ") holds the public key of our CSR");
    }
    X509* leaf = out.cert.get();
    if (X509_cmp_current_time(X509_get0_notBefore(leaf)) > 0)
        throw Error(Error::Kind::cert_not_yet_valid, "the issued certificate \"" + subject(leaf) +
                                                         "\" is not yet valid (notBefore " +
                                                         time_text(X509_get0_notBefore(leaf)) +
                                                         "); check this host's clock and the CA's");
    if (X509_cmp_current_time(X509_get0_notAfter(leaf)) < 0)
        throw Error(Error::Kind::cert_expired, "the issued certificate \"" + subject(leaf) +
                                                   "\" is already expired (notAfter " +
                                                   time_text(X509_get0_notAfter(leaf)) +
                                                   "); check this host's clock and the CA's");

    if (ca_certs.empty())
        throw Error(
            Error::Kind::chain_untrusted,
            "no CA certificates to verify the issued certificate against; fetch /cacerts first");
    std::vector<X509*> untrusted;
    for (auto& c : others) untrusted.push_back(c.get());
    out.chain = build_chain(leaf, untrusted, ca_certs);
    return out;
}

std::vector<ossl::X509Ptr> build_chain(X509* leaf, const std::vector<X509*>& untrusted,
                                       const std::vector<X509*>& ca_certs) {
    ossl::X509StorePtr store(X509_STORE_new());
    if (!store) throw ossl::Error("X509_STORE_new");
    for (X509* ca : ca_certs)
        if (X509_STORE_add_cert(store.get(), ca) != 1) throw ossl::Error("X509_STORE_add_cert");
    // Every certificate we hold may serve as an intermediate: the enrollment response's and
    // the stored CA certificates (RFC 7030 §4.1.3: /cacerts carries what a client needs to
    // build the chain from an issued certificate to the root).
    ossl::X509Stack pool(sk_X509_new_null());
    if (!pool) throw ossl::Error("sk_X509_new_null");
    auto add = [&](X509* c) {
        if (!sk_X509_push(pool.get(), c)) throw ossl::Error("sk_X509_push");
        X509_up_ref(c);
    };
    for (X509* c : untrusted) add(c);
    for (X509* c : ca_certs) add(c);

    // First to a self-signed root, then (when none of the stored certificates is a root)
    // to the highest stored CA certificate reachable.
    auto attempt = [&](bool partial, int& err, int& depth) -> ossl::X509Stack {
        ossl::X509StoreCtxPtr ctx(X509_STORE_CTX_new());
        if (!ctx || X509_STORE_CTX_init(ctx.get(), store.get(), leaf, pool.get()) != 1)
            throw ossl::Error("X509_STORE_CTX_init");
        X509_STORE_CTX_set_purpose(ctx.get(), X509_PURPOSE_SSL_CLIENT);
        if (partial)
            X509_VERIFY_PARAM_set_flags(X509_STORE_CTX_get0_param(ctx.get()),
                                        X509_V_FLAG_PARTIAL_CHAIN);
        if (X509_verify_cert(ctx.get()) == 1)
            return ossl::X509Stack(X509_STORE_CTX_get1_chain(ctx.get()));
        err = X509_STORE_CTX_get_error(ctx.get());
        depth = X509_STORE_CTX_get_error_depth(ctx.get());
        ERR_clear_error();
        return ossl::X509Stack(nullptr);
    };
    int err = 0, depth = 0;
    auto chain = attempt(false, err, depth);
    if (!chain && (err == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY ||
                   err == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT ||
                   err == X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN))
        chain = attempt(true, err, depth);
    if (!chain)
        throw Error(Error::Kind::chain_untrusted,
                    "the issued certificate \"" + subject(leaf) +
                        "\" does not verify to the stored EST CA certificates: " +
                        X509_verify_cert_error_string(err) + " (depth " + std::to_string(depth) +
                        ")");
    // chain[0] is the leaf. Everything above it goes to the peer except a self-signed root:
    // a partner that trusts only the root needs every intermediate (RFC 8446 §4.4.2).
    std::vector<ossl::X509Ptr> out;
    const int n = sk_X509_num(chain.get());
    for (int i = 1; i < n; ++i) {
        X509* c = sk_X509_value(chain.get(), i);
        if (X509_check_issued(c, c) == X509_V_OK) break;
        X509_up_ref(c);
        out.emplace_back(c);
    }
    return out;
}

}  // namespace mtls::est
