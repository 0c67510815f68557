// Key management for token keys: what OpenSSL needs to know about a key whose private half
// stays on the token (sizes, curve, public parts), public-key import for comparisons, and
// public-only export.
//
// Why export refuses private selections: OpenSSL 3.0 moves a key to the provider of the
// operation it fetched (EVP_PKEY_sign in the default provider, say) by exporting it with
// OSSL_KEYMGMT_SELECT_ALL. Refusing makes it fall back to this provider's own signature
// implementation (evp_pkey_signature_init, second iteration), so signing happens on the token.
// Public-only exports (encoders writing a SubjectPublicKeyInfo, X509_REQ_set_pubkey) work.
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/params.h>

#include "common/encoding.hpp"
#include "pkcs11/provider/internal.hpp"

namespace mtls::pkcs11::prov {

std::string KeyData::describe() const {
    std::string s = "key id " + (priv ? encoding::hex(priv->id) : std::string("(public only)"));
    if (!label.empty()) s += " (label \"" + label + "\")";
    if (token) s += " on " + token->description();
    return s;
}

LastError& last_error() {
    thread_local LastError e;
    return e;
}

void raise(const std::string& message, CK_RV rv) {
    last_error() = {message, rv};
    ERR_raise_data(ERR_LIB_PROV, ERR_R_OPERATION_FAIL, "%s", message.c_str());
}

namespace {

constexpr int kPrivate = OSSL_KEYMGMT_SELECT_PRIVATE_KEY;
constexpr int kPublic = OSSL_KEYMGMT_SELECT_PUBLIC_KEY;
constexpr int kDomain = OSSL_KEYMGMT_SELECT_ALL_PARAMETERS;

const char* type_name(Alg a) {
    return a == Alg::ec ? "EC" : "RSA";
}

template <Alg A>
void* km_new(void* provctx) {
    auto* k = new (std::nothrow) KeyData();
    if (!k) return nullptr;
    k->prov = static_cast<ProvCtx*>(provctx);
    k->alg = A;
    return k;
}

void km_free(void* keydata) {
    delete static_cast<KeyData*>(keydata);
}

void* km_load(const void* reference, size_t reference_sz) {
    // The store hands over a pointer to its KeyData; the EVP_PKEY gets a copy.
    if (!reference || reference_sz != sizeof(KeyData*)) return nullptr;
    const KeyData* src = *static_cast<const KeyData* const*>(reference);
    return guarded<void*>(nullptr, [&] { return new KeyData(*src); });
}

void* km_dup(const void* keydata, int /*selection*/) {
    return guarded<void*>(nullptr,
                          [&] { return new KeyData(*static_cast<const KeyData*>(keydata)); });
}

int km_has(const void* keydata, int selection) {
    const auto* k = static_cast<const KeyData*>(keydata);
    if (!k) return 0;
    if ((selection & kPrivate) && !k->priv) return 0;
    if ((selection & (kPublic | kDomain)) && !k->pub) return 0;
    return 1;
}

int km_match(const void* a, const void* b, int selection) {
    const auto* k1 = static_cast<const KeyData*>(a);
    const auto* k2 = static_cast<const KeyData*>(b);
    if (!k1->pub || !k2->pub) return 0;
    if (selection & (kPublic | kPrivate)) return EVP_PKEY_eq(k1->pub.get(), k2->pub.get()) == 1;
    if (selection & kDomain) {
        if (k1->alg == Alg::rsa) return 1;
        return EVP_PKEY_parameters_eq(k1->pub.get(), k2->pub.get()) == 1;
    }
    return 1;
}

template <Alg A>
int km_import(void* keydata, int selection, const OSSL_PARAM params[]) {
    auto* k = static_cast<KeyData*>(keydata);
    if (!k) return 0;
    if (OSSL_PARAM_locate_const(params, OSSL_PKEY_PARAM_PRIV_KEY) ||
        OSSL_PARAM_locate_const(params, OSSL_PKEY_PARAM_RSA_D)) {
        raise("the pkcs11 provider does not import private keys (keys are generated on the token)");
        return 0;
    }
    if (k->priv) {
        raise("cannot import into a token key");
        return 0;
    }
    const bool has_pub = OSSL_PARAM_locate_const(
        params, A == Alg::ec ? OSSL_PKEY_PARAM_PUB_KEY : OSSL_PKEY_PARAM_RSA_N);
    const int sel =
        has_pub ? EVP_PKEY_PUBLIC_KEY : (selection & kDomain ? EVP_PKEY_KEY_PARAMETERS : 0);
    if (!sel) return 0;
    ossl::PKeyCtx ctx(EVP_PKEY_CTX_new_from_name(nullptr, type_name(A), nullptr));
    EVP_PKEY* pk = nullptr;
    if (!ctx || EVP_PKEY_fromdata_init(ctx.get()) <= 0 ||
        EVP_PKEY_fromdata(ctx.get(), &pk, sel, const_cast<OSSL_PARAM*>(params)) <= 0)
        return 0;
    k->pub.reset(pk);
    return 1;
}

const OSSL_PARAM kEcImportTypes[] = {
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, nullptr, 0),
    OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, nullptr, 0),
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_EC_ENCODING, nullptr, 0),
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT, nullptr, 0), OSSL_PARAM_END};
const OSSL_PARAM kRsaImportTypes[] = {OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_N, nullptr, 0),
                                      OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_E, nullptr, 0),
                                      OSSL_PARAM_END};

template <Alg A>
const OSSL_PARAM* km_import_types(int selection) {
    if (selection & kPrivate) return nullptr;
    return A == Alg::ec ? kEcImportTypes : kRsaImportTypes;
}

int km_export(void* keydata, int selection, OSSL_CALLBACK* cb, void* cbarg) {
    auto* k = static_cast<KeyData*>(keydata);
    if (!k || !k->pub) return 0;
    if (selection & kPrivate) {
        // Not an error worth reporting: OpenSSL tries this and then falls back (see top).
        return 0;
    }
    OSSL_PARAM* params = nullptr;
    if (EVP_PKEY_todata(k->pub.get(), selection & (kPublic | kDomain), &params) <= 0) return 0;
    ossl::Params owned(params);
    return cb(params, cbarg);
}

template <Alg A>
const OSSL_PARAM* km_export_types(int selection) {
    return km_import_types<A>(selection);
}

const OSSL_PARAM kEcGettable[] = {
    OSSL_PARAM_int(OSSL_PKEY_PARAM_BITS, nullptr),
    OSSL_PARAM_int(OSSL_PKEY_PARAM_SECURITY_BITS, nullptr),
    OSSL_PARAM_int(OSSL_PKEY_PARAM_MAX_SIZE, nullptr),
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_DEFAULT_DIGEST, nullptr, 0),
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, nullptr, 0),
    OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, nullptr, 0),
    OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, nullptr, 0),
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT, nullptr, 0),
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_EC_ENCODING, nullptr, 0),
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_EC_PUB_X, nullptr, 0),
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_EC_PUB_Y, nullptr, 0),
    OSSL_PARAM_END};
const OSSL_PARAM kRsaGettable[] = {
    OSSL_PARAM_int(OSSL_PKEY_PARAM_BITS, nullptr),
    OSSL_PARAM_int(OSSL_PKEY_PARAM_SECURITY_BITS, nullptr),
    OSSL_PARAM_int(OSSL_PKEY_PARAM_MAX_SIZE, nullptr),
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_DEFAULT_DIGEST, nullptr, 0),
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_N, nullptr, 0),
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_E, nullptr, 0),
    OSSL_PARAM_END};

int km_get_params(void* keydata, OSSL_PARAM params[]) {
    auto* k = static_cast<KeyData*>(keydata);
    if (!k) return 0;
    // Public parts, sizes and curve come from the public key (the default provider answers
    // and ignores what it does not know). Nothing private is there to be asked for.
    if (k->pub && !EVP_PKEY_get_params(k->pub.get(), params)) return 0;
    OSSL_PARAM* p = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_DEFAULT_DIGEST);
    if (p && !OSSL_PARAM_set_utf8_string(p, "SHA256")) return 0;
    return 1;
}

template <Alg A>
const OSSL_PARAM* km_gettable_params(void*) {
    return A == Alg::ec ? kEcGettable : kRsaGettable;
}

template <Alg A>
const char* km_query_operation_name(int operation_id) {
    if (operation_id == OSSL_OP_SIGNATURE) return A == Alg::ec ? "ECDSA" : "RSA";
    return nullptr;
}

#define MTLS_FN(id, f) \
    { id, reinterpret_cast<void (*)(void)>(f) }

}  // namespace

const OSSL_DISPATCH kEcKeymgmt[] = {
    MTLS_FN(OSSL_FUNC_KEYMGMT_NEW, &km_new<Alg::ec>),
    MTLS_FN(OSSL_FUNC_KEYMGMT_FREE, &km_free),
    MTLS_FN(OSSL_FUNC_KEYMGMT_LOAD, &km_load),
    MTLS_FN(OSSL_FUNC_KEYMGMT_DUP, &km_dup),
    MTLS_FN(OSSL_FUNC_KEYMGMT_HAS, &km_has),
    MTLS_FN(OSSL_FUNC_KEYMGMT_MATCH, &km_match),
    MTLS_FN(OSSL_FUNC_KEYMGMT_IMPORT, &km_import<Alg::ec>),
    MTLS_FN(OSSL_FUNC_KEYMGMT_IMPORT_TYPES, &km_import_types<Alg::ec>),
    MTLS_FN(OSSL_FUNC_KEYMGMT_EXPORT, &km_export),
    MTLS_FN(OSSL_FUNC_KEYMGMT_EXPORT_TYPES, &km_export_types<Alg::ec>),
    MTLS_FN(OSSL_FUNC_KEYMGMT_GET_PARAMS, &km_get_params),
    MTLS_FN(OSSL_FUNC_KEYMGMT_GETTABLE_PARAMS, &km_gettable_params<Alg::ec>),
    MTLS_FN(OSSL_FUNC_KEYMGMT_QUERY_OPERATION_NAME, &km_query_operation_name<Alg::ec>),
    {0, nullptr}};

const OSSL_DISPATCH kRsaKeymgmt[] = {
    MTLS_FN(OSSL_FUNC_KEYMGMT_NEW, &km_new<Alg::rsa>),
    MTLS_FN(OSSL_FUNC_KEYMGMT_FREE, &km_free),
    MTLS_FN(OSSL_FUNC_KEYMGMT_LOAD, &km_load),
    MTLS_FN(OSSL_FUNC_KEYMGMT_DUP, &km_dup),
    MTLS_FN(OSSL_FUNC_KEYMGMT_HAS, &km_has),
    MTLS_FN(OSSL_FUNC_KEYMGMT_MATCH, &km_match),
    MTLS_FN(OSSL_FUNC_KEYMGMT_IMPORT, &km_import<Alg::rsa>),
    MTLS_FN(OSSL_FUNC_KEYMGMT_IMPORT_TYPES, &km_import_types<Alg::rsa>),
    MTLS_FN(OSSL_FUNC_KEYMGMT_EXPORT, &km_export),
    MTLS_FN(OSSL_FUNC_KEYMGMT_EXPORT_TYPES, &km_export_types<Alg::rsa>),
    MTLS_FN(OSSL_FUNC_KEYMGMT_GET_PARAMS, &km_get_params),
    MTLS_FN(OSSL_FUNC_KEYMGMT_GETTABLE_PARAMS, &km_gettable_params<Alg::rsa>),
    MTLS_FN(OSSL_FUNC_KEYMGMT_QUERY_OPERATION_NAME, &km_query_operation_name<Alg::rsa>),
    {0, nullptr}};

}  // namespace mtls::pkcs11::prov
