#include "pkcs11/provider/provider.hpp"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/params.h>
#include <openssl/provider.h>
#include <openssl/store.h>

#include <mutex>

#include "common/ossl_error.hpp"
#include "pkcs11/provider/internal.hpp"

namespace mtls::pkcs11 {

namespace prov {
namespace {

// The token a ProviderContext is about to load the provider for. OSSL_PROVIDER_load gives
// the init function no argument of ours (OpenSSL 3.0 has no per-load parameters), so the
// constructor sets this under g_init_mutex around the load.
std::mutex g_init_mutex;
std::shared_ptr<Token> g_pending_token;

const OSSL_ALGORITHM kKeymgmt[] = {
    {"EC:id-ecPublicKey:1.2.840.10045.2.1", "provider=mtls-pkcs11", kEcKeymgmt, "token EC keys"},
    {"RSA:rsaEncryption:1.2.840.113549.1.1.1", "provider=mtls-pkcs11", kRsaKeymgmt,
     "token RSA keys"},
    {nullptr, nullptr, nullptr, nullptr}};
const OSSL_ALGORITHM kSignature[] = {
    {"ECDSA", "provider=mtls-pkcs11", kEcdsaSignature, "ECDSA on the token"},
    {"RSA:rsaEncryption:1.2.840.113549.1.1.1", "provider=mtls-pkcs11", kRsaSignature,
     "RSA PKCS#1 v1.5 and PSS on the token"},
    {nullptr, nullptr, nullptr, nullptr}};
const OSSL_ALGORITHM kStore[] = {
    {"pkcs11", "provider=mtls-pkcs11", kStoreLoader, "pkcs11: URIs on the token"},
    {nullptr, nullptr, nullptr, nullptr}};

const OSSL_ALGORITHM* query_operation(void*, int operation_id, int* no_cache) {
    *no_cache = 0;
    switch (operation_id) {
        case OSSL_OP_KEYMGMT:
            return kKeymgmt;
        case OSSL_OP_SIGNATURE:
            return kSignature;
        case OSSL_OP_STORE:
            return kStore;
        default:
            return nullptr;
    }
}

const OSSL_PARAM kGettable[] = {OSSL_PARAM_utf8_ptr(OSSL_PROV_PARAM_NAME, nullptr, 0),
                                OSSL_PARAM_int(OSSL_PROV_PARAM_STATUS, nullptr), OSSL_PARAM_END};

const OSSL_PARAM* gettable_params(void*) {
    return kGettable;
}

int get_params(void*, OSSL_PARAM params[]) {
    OSSL_PARAM* p = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_NAME);
    if (p && !OSSL_PARAM_set_utf8_ptr(p, "mtls-agent PKCS#11 token provider")) return 0;
    p = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_STATUS);
    if (p && !OSSL_PARAM_set_int(p, 1)) return 0;
    return 1;
}

void teardown(void* provctx) {
    delete static_cast<ProvCtx*>(provctx);
}

#define MTLS_FN(id, f) \
    { id, reinterpret_cast<void (*)(void)>(f) }
const OSSL_DISPATCH kProviderFunctions[] = {
    MTLS_FN(OSSL_FUNC_PROVIDER_TEARDOWN, &teardown),
    MTLS_FN(OSSL_FUNC_PROVIDER_QUERY_OPERATION, &query_operation),
    MTLS_FN(OSSL_FUNC_PROVIDER_GETTABLE_PARAMS, &gettable_params),
    MTLS_FN(OSSL_FUNC_PROVIDER_GET_PARAMS, &get_params),
    {0, nullptr}};

int provider_init(const OSSL_CORE_HANDLE* handle, const OSSL_DISPATCH*, const OSSL_DISPATCH** out,
                  void** provctx) {
    if (!g_pending_token) return 0;  // only loadable through ProviderContext
    auto* ctx = new (std::nothrow) ProvCtx();
    if (!ctx) return 0;
    ctx->handle = handle;
    ctx->token = g_pending_token;
    *provctx = ctx;
    *out = kProviderFunctions;
    return 1;
}

}  // namespace
}  // namespace prov

ProviderContext::ProviderContext(std::shared_ptr<Token> token)
    : token_(std::move(token)), libctx_(OSSL_LIB_CTX_new()) {
    if (!token_) throw Error("ProviderContext needs a token");
    if (!libctx_) throw ossl::Error("cannot create an OpenSSL library context");
    default_ = OSSL_PROVIDER_load(libctx_.get(), "default");
    if (!default_) throw ossl::Error("cannot load OpenSSL's default provider");
    {
        std::lock_guard lk(prov::g_init_mutex);
        prov::g_pending_token = token_;
        if (OSSL_PROVIDER_add_builtin(libctx_.get(), kProviderName, &prov::provider_init))
            provider_ = OSSL_PROVIDER_load(libctx_.get(), kProviderName);
        prov::g_pending_token.reset();
    }
    if (!provider_) {
        OSSL_PROVIDER_unload(default_);
        throw ossl::Error("cannot load the mtls-pkcs11 OpenSSL provider");
    }
}

ProviderContext::~ProviderContext() {
    OSSL_PROVIDER_unload(provider_);
    OSSL_PROVIDER_unload(default_);
}

namespace {

// Loads the first object from a pkcs11: URI via OSSL_STORE in our library context.
ossl::StoreInfo load_one(OSSL_LIB_CTX* libctx, const std::string& uri, int expect) {
    ERR_clear_error();
    prov::last_error() = {};
    ossl::StoreCtx st(OSSL_STORE_open_ex(uri.c_str(), libctx, ProviderContext::kPropQuery, nullptr,
                                         nullptr, nullptr, nullptr, nullptr));
    if (!st) {
        // The provider's own message names the token and the key; prefer it.
        if (!prov::last_error().message.empty()) {
            ERR_clear_error();
            throw Error(prov::last_error().message, prov::last_error().rv);
        }
        throw ossl::Error("cannot open " + uri);
    }
    if (expect) OSSL_STORE_expect(st.get(), expect);
    while (!OSSL_STORE_eof(st.get())) {
        ossl::StoreInfo info(OSSL_STORE_load(st.get()));
        if (info) return info;
        if (ERR_peek_error() != 0) throw ossl::Error("loading " + uri + " failed");
    }
    throw Error("nothing to load at " + uri);
}

}  // namespace

ossl::PKey ProviderContext::load_key(const std::string& uri) const {
    // Any key type: a type=public URI yields a PUBKEY, the others a PKEY.
    auto info = load_one(libctx_.get(), uri, 0);
    EVP_PKEY* pk = OSSL_STORE_INFO_get1_PKEY(info.get());
    if (!pk) {
        pk = OSSL_STORE_INFO_get1_PUBKEY(info.get());
        if (!pk) throw ossl::Error("the object at " + uri + " is not a key");
    }
    return ossl::PKey(pk);
}

ossl::PKey ProviderContext::load_private_key(std::string_view id) const {
    return load_key(token_->key_uri(id));
}

ossl::X509Ptr ProviderContext::load_certificate(std::string_view id) const {
    std::string uri = token_->key_uri(id);
    uri.replace(uri.rfind("type=private"), 12, "type=cert");
    auto info = load_one(libctx_.get(), uri, OSSL_STORE_INFO_CERT);
    X509* x = OSSL_STORE_INFO_get1_CERT(info.get());
    if (!x) throw ossl::Error("the object at " + uri + " is not a certificate");
    return ossl::X509Ptr(x);
}

}  // namespace mtls::pkcs11
