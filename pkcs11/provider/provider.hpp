// Token keys inside OpenSSL 3: an OpenSSL provider ("mtls-pkcs11") with key management,
// signature (ECDSA, RSA PKCS#1 v1.5, RSA-PSS) and a store loader for `pkcs11:` URIs, loaded
// into an OpenSSL library context of its own.
//
//   auto token = pkcs11::Token::open(pkcs11::TokenOptions::from_config(cfg.pkcs11));
//   auto prov = std::make_shared<pkcs11::ProviderContext>(token);
//   ossl::PKey key = prov->load_private_key(info.id);     // signing happens on the token
//   SSL_CTX_use_certificate(ctx, cert); SSL_CTX_use_PrivateKey(ctx, key.get());
//
// The key works in SSL_CTXs of any library context, including the default one (libcurl's):
// OpenSSL moves a key to the provider of the operation by exporting it; token keys refuse to
// export their private half, so OpenSSL 3.0 falls back to this provider's signature code.
// Public parts export normally (X509_REQ_set_pubkey, X509_check_private_key, EVP_PKEY_eq).
//
// Why a library context of its own: registering keymgmt "EC"/"RSA" in the default context
// would let OpenSSL pick this provider for ordinary keys. libctx() also has the default
// provider loaded, so SSL_CTX_new_ex(prov.libctx(), nullptr, …) works for TLS as usual.
//
// Lifetime: keys and certificates loaded through a ProviderContext must be freed before it
// is destroyed (hold the ProviderContext in a shared_ptr next to the keys).
// Thread-safety: a loaded EVP_PKEY may be used by many threads at once (each signature takes
// its own session from the token's pool); load_* may be called concurrently.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "common/ossl.hpp"
#include "pkcs11/token.hpp"

namespace mtls::pkcs11 {

class ProviderContext {
  public:
    static constexpr const char* kProviderName = "mtls-pkcs11";
    // Property query that selects this provider's implementations.
    static constexpr const char* kPropQuery = "?provider=mtls-pkcs11";

    // Creates the library context, loads the default provider and this provider (serving
    // `token`) into it. Throws ossl::Error when OpenSSL refuses.
    explicit ProviderContext(std::shared_ptr<Token> token);
    ~ProviderContext();
    ProviderContext(const ProviderContext&) = delete;
    ProviderContext& operator=(const ProviderContext&) = delete;

    OSSL_LIB_CTX* libctx() const noexcept { return libctx_.get(); }
    const std::shared_ptr<Token>& token() const noexcept { return token_; }

    // The private key with this CKA_ID, via OSSL_STORE on token->key_uri(id). Throws
    // pkcs11::Error "key not found: no private key with id … on token …" and the like.
    ossl::PKey load_private_key(std::string_view id) const;
    // Any key given by a pkcs11: URI for this token (type=private by default, or public).
    ossl::PKey load_key(const std::string& uri) const;
    // The certificate with this CKA_ID stored on the token. Throws when there is none.
    ossl::X509Ptr load_certificate(std::string_view id) const;

  private:
    std::shared_ptr<Token> token_;
    ossl::LibCtx libctx_;
    OSSL_PROVIDER* default_ = nullptr;
    OSSL_PROVIDER* provider_ = nullptr;
};

}  // namespace mtls::pkcs11
