// Shared between the provider's operation files (not part of the public API).
#pragma once

#include <openssl/core.h>
#include <openssl/core_dispatch.h>

#include <memory>
#include <string>

#include "common/ossl.hpp"
#include "pkcs11/token.hpp"

namespace mtls::pkcs11::prov {

inline constexpr const char* kName = "mtls-pkcs11";

// The provider's context: the token it serves.
struct ProvCtx {
    const OSSL_CORE_HANDLE* handle = nullptr;
    std::shared_ptr<Token> token;
};

enum class Alg { ec, rsa };

// keymgmt key data. A token key has `token` and `priv` set; a key imported from elsewhere
// (a certificate's public key, for EVP_PKEY_eq) has only `pub`. `pub` is a plain OpenSSL
// public key (default library context) holding the public parts; the private key never
// leaves the token.
struct KeyData {
    ProvCtx* prov = nullptr;
    Alg alg = Alg::ec;
    std::shared_ptr<Token> token;
    std::shared_ptr<PrivateKeyRef> priv;
    std::string label;
    ossl::PKey pub;

    KeyData() = default;
    KeyData(const KeyData& o)
        : prov(o.prov), alg(o.alg), token(o.token), priv(o.priv), label(o.label) {
        if (o.pub) {
            EVP_PKEY_up_ref(o.pub.get());
            pub.reset(o.pub.get());
        }
    }
    KeyData& operator=(const KeyData&) = delete;

    int bits() const { return pub ? EVP_PKEY_get_bits(pub.get()) : 0; }
    // Largest signature in bytes: DER ECDSA-Sig-Value, or the RSA modulus length.
    int max_size() const { return pub ? EVP_PKEY_get_size(pub.get()) : 0; }
    // "key id 0a1b… (label "x") on token "t" (serial …, module …)" for messages.
    std::string describe() const;
};

// Records an error for OpenSSL's error queue (ERR_LIB_PROV, "operation fail" + message), and
// as this thread's last provider error (so ProviderContext can rethrow it with its CK_RV).
void raise(const std::string& message, CK_RV rv = CKR_OK);

struct LastError {
    std::string message;
    CK_RV rv = CKR_OK;
};
LastError& last_error();

// Runs f(), turning C++ exceptions into OpenSSL errors; returns `fail` when f throws.
template <class R, class F>
R guarded(R fail, F&& f) noexcept {
    try {
        return f();
    } catch (const Error& e) {
        raise(e.what(), e.rv());
    } catch (const std::exception& e) {
        raise(e.what());
    } catch (...) {
        raise("unexpected exception");
    }
    return fail;
}

extern const OSSL_DISPATCH kEcKeymgmt[];
extern const OSSL_DISPATCH kRsaKeymgmt[];
extern const OSSL_DISPATCH kEcdsaSignature[];
extern const OSSL_DISPATCH kRsaSignature[];
extern const OSSL_DISPATCH kStoreLoader[];

}  // namespace mtls::pkcs11::prov
