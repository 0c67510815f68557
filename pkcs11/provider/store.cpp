// The store loader for `pkcs11:` URIs: OSSL_STORE_open_ex("pkcs11:…;id=%01…", libctx, …)
// finds the private key (default, or type=private), public key (type=public) or certificate
// (type=cert) on the provider's token by id= and/or object= (label), and hands OpenSSL a
// reference to the key (loaded by keymgmt) or the certificate's DER.
#include <openssl/core_names.h>
#include <openssl/core_object.h>
#include <openssl/params.h>
#include <openssl/store.h>

#include <cstring>
#include <optional>

#include "common/encoding.hpp"
#include "pkcs11/provider/internal.hpp"

namespace mtls::pkcs11::prov {

namespace {

struct StoreCtx {
    ProvCtx* prov = nullptr;
    std::unique_ptr<KeyData> key;  // for keys
    std::string cert_der;          // for certificates
    bool is_cert = false;
    bool done = false;
};

std::string describe_selection(const Uri& u) {
    std::string s;
    if (u.id) s += "id " + encoding::hex(*u.id);
    if (u.object) s += std::string(s.empty() ? "" : ", ") + "label \"" + *u.object + "\"";
    return s;
}

void check_token(const Uri& u, const Token& t) {
    const bool label_ok = !u.token || *u.token == t.label();
    const bool serial_ok = !u.serial || *u.serial == t.serial();
    if (!label_ok || !serial_ok)
        throw Error("token not found: " + u.token_part() +
                    " is not the token this provider serves (" + t.description() + ")");
}

StoreCtx* open_impl(ProvCtx* prov, const char* uri_text) {
    const Uri u = Uri::parse(uri_text);
    Token& t = *prov->token;
    check_token(u, t);
    if (!u.id && !u.object) throw Error("the pkcs11: URI names no object (add id= or object=)");
    const std::string type = u.type.value_or("private");
    auto ctx = std::make_unique<StoreCtx>();
    ctx->prov = prov;

    if (type == "cert") {
        std::optional<std::string> id = u.id;
        if (!id) {
            auto keys = t.find_keys_by_label(*u.object);
            if (!keys.empty()) id = keys.front().id;
        }
        std::optional<std::string> der;
        if (id) der = t.find_certificate(*id);
        if (!der)
            throw Error("certificate not found: no certificate with " + describe_selection(u) +
                        " on " + t.description());
        ctx->is_cert = true;
        ctx->cert_der = std::move(*der);
        return ctx.release();
    }
    if (type != "private" && type != "public")
        throw Error(
            "the pkcs11 provider loads only private keys, public keys and certificates (type=" +
            type + ")");
    std::optional<KeyInfo> info;
    if (u.id) {
        info = t.find_key(*u.id);
        if (info && u.object && info->label != *u.object) info.reset();
    } else {
        auto keys = t.find_keys_by_label(*u.object);
        if (keys.size() > 1)
            throw Error("the label \"" + *u.object + "\" names " + std::to_string(keys.size()) +
                        " keys on " + t.description() + "; add id= to the URI");
        if (!keys.empty()) info = std::move(keys.front());
    }
    if (!info)
        throw Error("key not found: no private key with " + describe_selection(u) + " on " +
                    t.description());
    auto k = std::make_unique<KeyData>();
    k->prov = prov;
    k->alg = (info->type == config::KeyType::ec_p256 || info->type == config::KeyType::ec_p384)
                 ? Alg::ec
                 : Alg::rsa;
    k->label = info->label;
    k->pub = t.public_key(info->id);
    if (type == "private") {
        k->token = prov->token;
        k->priv = std::make_shared<PrivateKeyRef>(info->id);
    }
    ctx->key = std::move(k);
    return ctx.release();
}

void* st_open(void* provctx, const char* uri) {
    return guarded<void*>(nullptr, [&] { return open_impl(static_cast<ProvCtx*>(provctx), uri); });
}

const OSSL_PARAM kSettable[] = {OSSL_PARAM_int(OSSL_STORE_PARAM_EXPECT, nullptr), OSSL_PARAM_END};

const OSSL_PARAM* st_settable_ctx_params(void*) {
    return kSettable;
}
int st_set_ctx_params(void*, const OSSL_PARAM[]) {
    return 1;
}

int st_load(void* vctx, OSSL_CALLBACK* object_cb, void* object_cbarg, OSSL_PASSPHRASE_CALLBACK*,
            void*) {
    auto* c = static_cast<StoreCtx*>(vctx);
    if (c->done) return 0;
    c->done = true;
    if (c->is_cert) {
        int type = OSSL_OBJECT_CERT;
        OSSL_PARAM params[] = {OSSL_PARAM_construct_int(OSSL_OBJECT_PARAM_TYPE, &type),
                               OSSL_PARAM_construct_octet_string(
                                   OSSL_OBJECT_PARAM_DATA, c->cert_der.data(), c->cert_der.size()),
                               OSSL_PARAM_construct_end()};
        return object_cb(params, object_cbarg);
    }
    int type = OSSL_OBJECT_PKEY;
    KeyData* ref = c->key.get();
    char data_type[8];
    std::strcpy(data_type, ref->alg == Alg::ec ? "EC" : "RSA");
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_int(OSSL_OBJECT_PARAM_TYPE, &type),
        OSSL_PARAM_construct_utf8_string(OSSL_OBJECT_PARAM_DATA_TYPE, data_type, 0),
        OSSL_PARAM_construct_octet_string(OSSL_OBJECT_PARAM_REFERENCE, &ref, sizeof ref),
        OSSL_PARAM_construct_end()};
    return object_cb(params, object_cbarg);
}

int st_eof(void* vctx) {
    return static_cast<StoreCtx*>(vctx)->done ? 1 : 0;
}

int st_close(void* vctx) {
    delete static_cast<StoreCtx*>(vctx);
    return 1;
}

#define MTLS_FN(id, f) \
    { id, reinterpret_cast<void (*)(void)>(f) }

}  // namespace

const OSSL_DISPATCH kStoreLoader[] = {
    MTLS_FN(OSSL_FUNC_STORE_OPEN, &st_open),
    MTLS_FN(OSSL_FUNC_STORE_SETTABLE_CTX_PARAMS, &st_settable_ctx_params),
    MTLS_FN(OSSL_FUNC_STORE_SET_CTX_PARAMS, &st_set_ctx_params),
    MTLS_FN(OSSL_FUNC_STORE_LOAD, &st_load),
    MTLS_FN(OSSL_FUNC_STORE_EOF, &st_eof),
    MTLS_FN(OSSL_FUNC_STORE_CLOSE, &st_close),
    {0, nullptr}};

}  // namespace mtls::pkcs11::prov
