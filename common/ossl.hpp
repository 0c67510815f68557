// RAII owners for OpenSSL handles. Business code never calls *_free itself.
#pragma once

#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pkcs7.h>
#include <openssl/provider.h>
#include <openssl/ssl.h>
#include <openssl/store.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>

namespace mtls::ossl {

template <auto FreeFn>
struct Deleter {
    template <class T>
    void operator()(T* p) const noexcept {
        FreeFn(p);
    }
};

template <class T, auto FreeFn>
using Owned = std::unique_ptr<T, Deleter<FreeFn>>;

using Bio = Owned<BIO, &BIO_free_all>;
using BioMethod = Owned<BIO_METHOD, &BIO_meth_free>;
using X509Ptr = Owned<X509, &X509_free>;
using X509ReqPtr = Owned<X509_REQ, &X509_REQ_free>;
using X509StorePtr = Owned<X509_STORE, &X509_STORE_free>;
using X509StoreCtxPtr = Owned<X509_STORE_CTX, &X509_STORE_CTX_free>;
using X509NamePtr = Owned<X509_NAME, &X509_NAME_free>;
using X509ExtPtr = Owned<X509_EXTENSION, &X509_EXTENSION_free>;
using PKey = Owned<EVP_PKEY, &EVP_PKEY_free>;
using PKeyCtx = Owned<EVP_PKEY_CTX, &EVP_PKEY_CTX_free>;
using MdCtx = Owned<EVP_MD_CTX, &EVP_MD_CTX_free>;
using Md = Owned<EVP_MD, &EVP_MD_free>;
using LibCtx = Owned<OSSL_LIB_CTX, &OSSL_LIB_CTX_free>;
using StoreCtx = Owned<OSSL_STORE_CTX, &OSSL_STORE_close>;
using StoreInfo = Owned<OSSL_STORE_INFO, &OSSL_STORE_INFO_free>;
using SslCtx = Owned<SSL_CTX, &SSL_CTX_free>;
using Ssl = Owned<SSL, &SSL_free>;
using SslSession = Owned<SSL_SESSION, &SSL_SESSION_free>;
using Pkcs7 = Owned<PKCS7, &PKCS7_free>;
using Asn1Integer = Owned<ASN1_INTEGER, &ASN1_INTEGER_free>;
using Asn1Time = Owned<ASN1_TIME, &ASN1_TIME_free>;
using BigNum = Owned<BIGNUM, &BN_free>;
using ParamBld = Owned<OSSL_PARAM_BLD, &OSSL_PARAM_BLD_free>;
using Params = Owned<OSSL_PARAM, &OSSL_PARAM_free>;
using EcdsaSig = Owned<ECDSA_SIG, &ECDSA_SIG_free>;
using X509Sig = Owned<X509_SIG, &X509_SIG_free>;
using X509Algor = Owned<X509_ALGOR, &X509_ALGOR_free>;
using Asn1Object = Owned<ASN1_OBJECT, &ASN1_OBJECT_free>;
using Asn1OctetString = Owned<ASN1_OCTET_STRING, &ASN1_OCTET_STRING_free>;

inline void free_x509_stack(STACK_OF(X509) * s) noexcept {
    sk_X509_pop_free(s, X509_free);
}
using X509Stack = Owned<STACK_OF(X509), &free_x509_stack>;
inline void free_x509_ext_stack(STACK_OF(X509_EXTENSION) * s) noexcept {
    sk_X509_EXTENSION_pop_free(s, X509_EXTENSION_free);
}
using X509ExtStack = Owned<STACK_OF(X509_EXTENSION), &free_x509_ext_stack>;

}  // namespace mtls::ossl
