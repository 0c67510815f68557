// Token: key pairs and certificates on the token (see token.hpp for the API).
#include <openssl/core_names.h>
#include <openssl/objects.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "common/encoding.hpp"
#include "common/log.hpp"
#include "common/ossl_error.hpp"
#include "pkcs11/token.hpp"

namespace mtls::pkcs11 {

namespace {

CK_BBOOL kTrue = CK_TRUE;
CK_BBOOL kFalse = CK_FALSE;

CK_ATTRIBUTE attr(CK_ATTRIBUTE_TYPE type, const void* value, std::size_t len) {
    return CK_ATTRIBUTE{type, const_cast<void*>(value), static_cast<CK_ULONG>(len)};
}
template <class T>
CK_ATTRIBUTE attr(CK_ATTRIBUTE_TYPE type, const T& value) {
    return attr(type, &value, sizeof value);
}
CK_ATTRIBUTE attr_bytes(CK_ATTRIBUTE_TYPE type, std::string_view v) {
    return attr(type, v.data(), v.size());
}

// The value of one attribute; nullopt when the object has no such attribute, or it is
// sensitive (CKR_ATTRIBUTE_SENSITIVE / TYPE_INVALID / CK_UNAVAILABLE_INFORMATION).
std::optional<std::string> get_attr(const Token& t, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o,
                                    CK_ATTRIBUTE_TYPE type) {
    CK_ATTRIBUTE a{type, nullptr, 0};
    CK_RV rv = t.fn()->C_GetAttributeValue(s, o, &a, 1);
    if (rv == CKR_ATTRIBUTE_SENSITIVE || rv == CKR_ATTRIBUTE_TYPE_INVALID) return std::nullopt;
    t.check(rv, "C_GetAttributeValue");
    if (a.ulValueLen == CK_UNAVAILABLE_INFORMATION) return std::nullopt;
    std::string out(a.ulValueLen, '\0');
    a.pValue = out.data();
    rv = t.fn()->C_GetAttributeValue(s, o, &a, 1);
    if (rv == CKR_ATTRIBUTE_SENSITIVE || rv == CKR_ATTRIBUTE_TYPE_INVALID) return std::nullopt;
    t.check(rv, "C_GetAttributeValue");
    out.resize(a.ulValueLen);
    return out;
}

std::optional<CK_ULONG> get_ulong(const Token& t, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o,
                                  CK_ATTRIBUTE_TYPE type) {
    CK_ULONG v = 0;
    CK_ATTRIBUTE a{type, &v, sizeof v};
    const CK_RV rv = t.fn()->C_GetAttributeValue(s, o, &a, 1);
    if (rv == CKR_ATTRIBUTE_SENSITIVE || rv == CKR_ATTRIBUTE_TYPE_INVALID) return std::nullopt;
    t.check(rv, "C_GetAttributeValue");
    if (a.ulValueLen != sizeof v) return std::nullopt;
    return v;
}

std::vector<CK_OBJECT_HANDLE> find_objects(const Token& t, CK_SESSION_HANDLE s,
                                           std::vector<CK_ATTRIBUTE> tmpl) {
    t.check(t.fn()->C_FindObjectsInit(s, tmpl.data(), tmpl.size()), "C_FindObjectsInit");
    std::vector<CK_OBJECT_HANDLE> out;
    CK_RV rv = CKR_OK;
    while (true) {
        CK_OBJECT_HANDLE buf[64];
        CK_ULONG n = 0;
        rv = t.fn()->C_FindObjects(s, buf, 64, &n);
        if (rv != CKR_OK || n == 0) break;
        out.insert(out.end(), buf, buf + n);
    }
    const CK_RV rv_final = t.fn()->C_FindObjectsFinal(s);
    t.check(rv, "C_FindObjects");
    t.check(rv_final, "C_FindObjectsFinal");
    return out;
}

// Private objects are invisible, not an error, when the application was logged out behind our
// back (C_Logout or C_CloseAllSessions elsewhere): turn that into CKR_USER_NOT_LOGGED_IN so
// that with_session logs in again and retries.
void require_login(const Token& t, CK_SESSION_HANDLE s) {
    CK_SESSION_INFO si{};
    t.check(t.fn()->C_GetSessionInfo(s, &si), "C_GetSessionInfo");
    if (si.state != CKS_RO_USER_FUNCTIONS && si.state != CKS_RW_USER_FUNCTIONS)
        t.check(CKR_USER_NOT_LOGGED_IN, "C_FindObjects", "the session is not logged in");
}

std::string ec_params_der(int nid) {
    ossl::Asn1Object obj(OBJ_nid2obj(nid));
    unsigned char* der = nullptr;
    const int n = i2d_ASN1_OBJECT(obj.get(), &der);
    if (n <= 0) throw ossl::Error("cannot encode the EC curve OID");
    std::string out(reinterpret_cast<char*>(der), n);
    OPENSSL_free(der);
    return out;
}

// EC curve of a CKA_EC_PARAMS value (a DER OID), as an OpenSSL NID; NID_undef otherwise.
int ec_params_nid(std::string_view der) {
    const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
    ossl::Asn1Object obj(d2i_ASN1_OBJECT(nullptr, &p, static_cast<long>(der.size())));
    return obj ? OBJ_obj2nid(obj.get()) : NID_undef;
}

// CKA_EC_POINT: a DER OCTET STRING around the point per the spec; some tokens give it raw.
std::string ec_point_raw(std::string_view v) {
    const unsigned char* p = reinterpret_cast<const unsigned char*>(v.data());
    ossl::Asn1OctetString os(d2i_ASN1_OCTET_STRING(nullptr, &p, static_cast<long>(v.size())));
    if (os && p == reinterpret_cast<const unsigned char*>(v.data()) + v.size())
        return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(os.get())),
                           ASN1_STRING_length(os.get()));
    return std::string(v);
}

std::optional<config::KeyType> key_type_of(const Token& t, CK_SESSION_HANDLE s,
                                           CK_OBJECT_HANDLE o) {
    const auto kt = get_ulong(t, s, o, CKA_KEY_TYPE);
    if (!kt) return std::nullopt;
    if (*kt == CKK_EC) {
        const auto params = get_attr(t, s, o, CKA_EC_PARAMS);
        if (!params) return std::nullopt;
        switch (ec_params_nid(*params)) {
            case NID_X9_62_prime256v1:
                return config::KeyType::ec_p256;
            case NID_secp384r1:
                return config::KeyType::ec_p384;
            default:
                return std::nullopt;
        }
    }
    if (*kt == CKK_RSA) {
        const auto n = get_attr(t, s, o, CKA_MODULUS);
        if (!n) return std::nullopt;
        std::size_t len = n->size();
        std::size_t i = 0;
        while (i < n->size() && (*n)[i] == 0) ++i, --len;
        if (len == 256) return config::KeyType::rsa_2048;
        if (len == 384) return config::KeyType::rsa_3072;
    }
    return std::nullopt;
}

std::optional<KeyInfo> info_of(const Token& t, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o) {
    const auto type = key_type_of(t, s, o);
    if (!type) return std::nullopt;
    KeyInfo k;
    k.id = get_attr(t, s, o, CKA_ID).value_or("");
    k.label = get_attr(t, s, o, CKA_LABEL).value_or("");
    k.type = *type;
    k.uri = t.key_uri(k.id);
    return k;
}

std::vector<KeyInfo> private_keys(const Token& t, CK_SESSION_HANDLE s,
                                  std::vector<CK_ATTRIBUTE> extra) {
    static const CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
    extra.push_back(attr(CKA_CLASS, cls));
    require_login(t, s);
    std::vector<KeyInfo> out;
    for (CK_OBJECT_HANDLE o : find_objects(t, s, std::move(extra)))
        if (auto k = info_of(t, s, o)) out.push_back(std::move(*k));
    return out;
}

ossl::PKey pkey_from(const char* type, const OSSL_PARAM* params) {
    ossl::PKeyCtx ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
    EVP_PKEY* pk = nullptr;
    if (!ctx || EVP_PKEY_fromdata_init(ctx.get()) <= 0 ||
        EVP_PKEY_fromdata(ctx.get(), &pk, EVP_PKEY_PUBLIC_KEY, const_cast<OSSL_PARAM*>(params)) <=
            0)
        throw ossl::Error(std::string("cannot build the ") + type +
                          " public key from the token's attributes");
    return ossl::PKey(pk);
}

}  // namespace

KeyInfo Token::generate_key(config::KeyType type, const std::string& label,
                            std::string_view wanted_id) {
    std::string id(wanted_id);
    if (id.empty()) {
        unsigned char idbuf[16];
        if (RAND_bytes(idbuf, sizeof idbuf) != 1) throw ossl::Error("cannot make a random CKA_ID");
        id.assign(reinterpret_cast<char*>(idbuf), sizeof idbuf);
    }

    static const CK_OBJECT_CLASS pub_cls = CKO_PUBLIC_KEY, priv_cls = CKO_PRIVATE_KEY;
    std::vector<CK_ATTRIBUTE> pub = {
        attr(CKA_CLASS, pub_cls),     attr(CKA_TOKEN, kTrue), attr(CKA_PRIVATE, kFalse),
        attr_bytes(CKA_LABEL, label), attr_bytes(CKA_ID, id),
    };
    // tpm2-pkcs11 (1.9) derives the public key's CKA_VERIFY from the TPM key's decrypt
    // attribute: CKA_VERIFY=true in the template makes the private key decrypt-capable, and
    // together with our CKA_DECRYPT=false it fails (CKR_GENERAL_ERROR, "User specified and
    // TPM specified attr mismatch: 0x10a"). The public key verifies nothing here (OpenSSL
    // verifies in software), so the TPM template leaves it out.
    if (!module_->is_tpm2_pkcs11()) pub.push_back(attr(CKA_VERIFY, kTrue));
    std::vector<CK_ATTRIBUTE> priv = {
        attr(CKA_CLASS, priv_cls),    attr(CKA_TOKEN, kTrue),        attr(CKA_PRIVATE, kTrue),
        attr(CKA_SENSITIVE, kTrue),   attr(CKA_EXTRACTABLE, kFalse), attr(CKA_SIGN, kTrue),
        attr(CKA_DECRYPT, kFalse),    attr(CKA_DERIVE, kFalse),      attr(CKA_UNWRAP, kFalse),
        attr_bytes(CKA_LABEL, label), attr_bytes(CKA_ID, id),
    };
    CK_MECHANISM mech{};
    std::string ec_params;
    CK_ULONG bits = 0;
    static const unsigned char kExponent[] = {0x01, 0x00, 0x01};
    switch (type) {
        case config::KeyType::ec_p256:
        case config::KeyType::ec_p384:
            ec_params = ec_params_der(type == config::KeyType::ec_p256 ? NID_X9_62_prime256v1
                                                                       : NID_secp384r1);
            pub.push_back(attr_bytes(CKA_EC_PARAMS, ec_params));
            mech.mechanism = CKM_EC_KEY_PAIR_GEN;
            break;
        case config::KeyType::rsa_2048:
        case config::KeyType::rsa_3072:
            bits = type == config::KeyType::rsa_2048 ? 2048 : 3072;
            pub.push_back(attr(CKA_MODULUS_BITS, bits));
            pub.push_back(attr(CKA_PUBLIC_EXPONENT, kExponent, sizeof kExponent));
            mech.mechanism = CKM_RSA_PKCS_KEY_PAIR_GEN;
            break;
    }
    with_session([&](CK_SESSION_HANDLE s) {
        CK_OBJECT_HANDLE hpub = CK_INVALID_HANDLE, hpriv = CK_INVALID_HANDLE;
        check(fn()->C_GenerateKeyPair(s, &mech, pub.data(), pub.size(), priv.data(), priv.size(),
                                      &hpub, &hpriv),
              "C_GenerateKeyPair", std::string("key type ") + config::to_string(type));
        return 0;
    });
    KeyInfo k{id, label, type, key_uri(id)};
    log::info("pkcs11.key_generated", {{"token", label_},
                                       {"key_id", k.id_hex()},
                                       {"label", label},
                                       {"type", config::to_string(type)}});
    return k;
}

std::vector<KeyInfo> Token::list_keys() {
    return with_session([&](CK_SESSION_HANDLE s) { return private_keys(*this, s, {}); });
}

std::optional<KeyInfo> Token::find_key(std::string_view id) {
    auto keys = with_session(
        [&](CK_SESSION_HANDLE s) { return private_keys(*this, s, {attr_bytes(CKA_ID, id)}); });
    if (keys.empty()) return std::nullopt;
    return std::move(keys.front());
}

std::vector<KeyInfo> Token::find_keys_by_label(std::string_view label) {
    return with_session([&](CK_SESSION_HANDLE s) {
        return private_keys(*this, s, {attr_bytes(CKA_LABEL, label)});
    });
}

std::vector<Token::ObjectInfo> Token::list_objects() {
    return with_session([&](CK_SESSION_HANDLE s) {
        require_login(*this, s);
        std::vector<ObjectInfo> out;
        std::size_t unreadable = 0;
        for (CK_OBJECT_HANDLE o : find_objects(*this, s, {})) {
            ObjectInfo info;
            try {
                info.id = get_attr(*this, s, o, CKA_ID).value_or("");
                info.label = get_attr(*this, s, o, CKA_LABEL).value_or("");
                info.cls = get_ulong(*this, s, o, CKA_CLASS).value_or(CKO_DATA);
            } catch (const Error& e) {
                // An object that cannot be read is nobody's we can name: skipped, never
                // destroyed. SoftHSM2 answers CKR_ATTRIBUTE_VALUE_INVALID for an object a
                // C_GenerateKeyPair killed half-way left without its class (ours after a crash,
                // or another agent's being made right now); CKR_OBJECT_HANDLE_INVALID when
                // another process destroyed it since C_FindObjects.
                if (e.rv() != CKR_ATTRIBUTE_VALUE_INVALID && e.rv() != CKR_OBJECT_HANDLE_INVALID)
                    throw;
                ++unreadable;
                continue;
            }
            out.push_back(std::move(info));
        }
        if (unreadable > 0)
            log::warn("pkcs11.objects_unreadable",
                      {{"token", label_},
                       {"objects", unreadable},
                       {"action",
                        "left alone; an interrupted key generation leaves such an "
                        "object — if it stays, list the token's objects "
                        "(pkcs11-tool -O) and delete the one without attributes"}});
        return out;
    });
}

std::size_t Token::destroy_key(std::string_view id) {
    if (id.empty()) throw Error("destroy_key: empty key id");
    const std::size_t n = with_session([&](CK_SESSION_HANDLE s) {
        std::size_t count = 0;
        for (CK_OBJECT_HANDLE o : find_objects(*this, s, {attr_bytes(CKA_ID, id)})) {
            check(fn()->C_DestroyObject(s, o), "C_DestroyObject", "key id " + encoding::hex(id));
            ++count;
        }
        return count;
    });
    log::info("pkcs11.key_destroyed",
              {{"token", label_}, {"key_id", encoding::hex(id)}, {"objects", n}});
    return n;
}

std::size_t Token::destroy_keys_by_label(std::string_view label) {
    std::size_t n = 0;
    for (const auto& k : find_keys_by_label(label)) n += destroy_key(k.id);
    return n;
}

ossl::PKey Token::public_key(std::string_view id) {
    struct Raw {
        CK_ULONG key_type = 0;
        std::string a, b;  // EC: params, point; RSA: modulus, exponent
        std::optional<std::string> cert;
    };
    auto raw = with_session([&](CK_SESSION_HANDLE s) -> std::optional<Raw> {
        static const CK_OBJECT_CLASS pub_cls = CKO_PUBLIC_KEY, priv_cls = CKO_PRIVATE_KEY,
                                     cert_cls = CKO_CERTIFICATE;
        for (CK_OBJECT_CLASS cls : {pub_cls, priv_cls}) {
            for (CK_OBJECT_HANDLE o :
                 find_objects(*this, s, {attr(CKA_CLASS, cls), attr_bytes(CKA_ID, id)})) {
                Raw r;
                r.key_type = get_ulong(*this, s, o, CKA_KEY_TYPE).value_or(~0UL);
                if (r.key_type == CKK_EC) {
                    auto params = get_attr(*this, s, o, CKA_EC_PARAMS);
                    auto point = get_attr(*this, s, o, CKA_EC_POINT);
                    if (params && point) {
                        r.a = *params;
                        r.b = ec_point_raw(*point);
                        return r;
                    }
                } else if (r.key_type == CKK_RSA) {
                    auto n = get_attr(*this, s, o, CKA_MODULUS);
                    auto e = get_attr(*this, s, o, CKA_PUBLIC_EXPONENT);
                    if (n && e) {
                        r.a = *n;
                        r.b = *e;
                        return r;
                    }
                }
            }
        }
        for (CK_OBJECT_HANDLE o :
             find_objects(*this, s, {attr(CKA_CLASS, cert_cls), attr_bytes(CKA_ID, id)})) {
            Raw r;
            r.cert = get_attr(*this, s, o, CKA_VALUE);
            if (r.cert) return r;
        }
        return std::nullopt;
    });
    if (!raw)
        throw Error("key not found: no public key or certificate with id " + encoding::hex(id) +
                    " on " + description_);
    if (raw->cert) {
        const unsigned char* p = reinterpret_cast<const unsigned char*>(raw->cert->data());
        ossl::X509Ptr x(d2i_X509(nullptr, &p, static_cast<long>(raw->cert->size())));
        if (!x)
            throw ossl::Error("the certificate with id " + encoding::hex(id) + " on " +
                              description_ + " does not parse");
        return ossl::PKey(X509_get_pubkey(x.get()));
    }
    if (raw->key_type == CKK_EC) {
        const int nid = ec_params_nid(raw->a);
        if (nid == NID_undef)
            throw Error("the EC key with id " + encoding::hex(id) + " on " + description_ +
                        " uses a curve that is not a named curve");
        OSSL_PARAM params[] = {
            OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME,
                                             const_cast<char*>(OBJ_nid2sn(nid)), 0),
            OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, raw->b.data(),
                                              raw->b.size()),
            OSSL_PARAM_construct_end()};
        return pkey_from("EC", params);
    }
    ossl::BigNum n(BN_bin2bn(reinterpret_cast<const unsigned char*>(raw->a.data()),
                             static_cast<int>(raw->a.size()), nullptr));
    ossl::BigNum e(BN_bin2bn(reinterpret_cast<const unsigned char*>(raw->b.data()),
                             static_cast<int>(raw->b.size()), nullptr));
    ossl::ParamBld bld(OSSL_PARAM_BLD_new());
    if (!n || !e || !bld || !OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, n.get()) ||
        !OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, e.get()))
        throw ossl::Error("cannot build RSA key parameters");
    ossl::Params params(OSSL_PARAM_BLD_to_param(bld.get()));
    if (!params) throw ossl::Error("cannot build RSA key parameters");
    return pkey_from("RSA", params.get());
}

void Token::store_certificate(std::string_view id, std::string_view der, const std::string& label) {
    const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
    ossl::X509Ptr x(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
    if (!x) throw ossl::Error("store_certificate: the certificate does not parse as DER X.509");
    auto encode = [](auto* obj, auto i2d) {
        unsigned char* buf = nullptr;
        const int n = i2d(obj, &buf);
        if (n <= 0) throw ossl::Error("store_certificate: cannot encode the certificate's names");
        std::string out(reinterpret_cast<char*>(buf), n);
        OPENSSL_free(buf);
        return out;
    };
    const std::string subject = encode(X509_get_subject_name(x.get()), &i2d_X509_NAME);
    const std::string issuer = encode(X509_get_issuer_name(x.get()), &i2d_X509_NAME);
    const std::string serial = encode(X509_get0_serialNumber(x.get()), &i2d_ASN1_INTEGER);
    static const CK_OBJECT_CLASS cls = CKO_CERTIFICATE;
    static const CK_CERTIFICATE_TYPE ctype = CKC_X_509;
    std::vector<CK_ATTRIBUTE> tmpl = {
        attr(CKA_CLASS, cls),
        attr(CKA_CERTIFICATE_TYPE, ctype),
        attr(CKA_TOKEN, kTrue),
        attr(CKA_PRIVATE, kFalse),
        attr_bytes(CKA_ID, id),
        attr_bytes(CKA_LABEL, label),
        attr_bytes(CKA_SUBJECT, subject),
        attr_bytes(CKA_ISSUER, issuer),
        attr_bytes(CKA_SERIAL_NUMBER, serial),
        attr_bytes(CKA_VALUE, der),
    };
    with_session([&](CK_SESSION_HANDLE s) {
        for (CK_OBJECT_HANDLE o :
             find_objects(*this, s, {attr(CKA_CLASS, cls), attr_bytes(CKA_ID, id)}))
            check(fn()->C_DestroyObject(s, o), "C_DestroyObject", "old certificate");
        CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
        check(fn()->C_CreateObject(s, tmpl.data(), tmpl.size(), &h), "C_CreateObject",
              "certificate for key id " + encoding::hex(id));
        return 0;
    });
}

std::optional<std::string> Token::find_certificate(std::string_view id) {
    return with_session([&](CK_SESSION_HANDLE s) -> std::optional<std::string> {
        static const CK_OBJECT_CLASS cls = CKO_CERTIFICATE;
        for (CK_OBJECT_HANDLE o :
             find_objects(*this, s, {attr(CKA_CLASS, cls), attr_bytes(CKA_ID, id)}))
            if (auto v = get_attr(*this, s, o, CKA_VALUE)) return v;
        return std::nullopt;
    });
}

void Token::set_sign_observer(SignObserver observer) {
    auto p = observer ? std::make_shared<const SignObserver>(std::move(observer)) : nullptr;
    std::lock_guard lock(observer_mu_);
    sign_observer_ = std::move(p);
}

void Token::set_key_gone_observer(KeyGoneObserver observer) {
    auto p = observer ? std::make_shared<const KeyGoneObserver>(std::move(observer)) : nullptr;
    std::lock_guard lock(observer_mu_);
    key_gone_observer_ = std::move(p);
}

std::string Token::sign(PrivateKeyRef& key, const CK_MECHANISM& mech,
                        std::span<const unsigned char> data, std::size_t max_sig) {
    std::shared_ptr<const SignObserver> observer;
    {
        std::lock_guard lock(observer_mu_);
        observer = sign_observer_;
    }
    const auto t0 = std::chrono::steady_clock::now();
    try {
        auto sig = sign_on_token(key, mech, data, max_sig);
        if (observer) (*observer)(std::chrono::steady_clock::now() - t0, true);
        return sig;
    } catch (const KeyGone&) {
        if (observer) (*observer)(std::chrono::steady_clock::now() - t0, false);
        std::shared_ptr<const KeyGoneObserver> gone;
        {
            std::lock_guard lock(observer_mu_);
            gone = key_gone_observer_;
        }
        if (gone) (*gone)(key.id);
        throw;
    } catch (...) {
        if (observer) (*observer)(std::chrono::steady_clock::now() - t0, false);
        throw;
    }
}

std::string Token::sign_on_token(PrivateKeyRef& key, const CK_MECHANISM& mech,
                                 std::span<const unsigned char> data, std::size_t max_sig) {
    return with_session([&](CK_SESSION_HANDLE s) {
        CK_MECHANISM m = mech;
        for (int attempt = 0;; ++attempt) {
            CK_OBJECT_HANDLE h = key.handle.load(std::memory_order_relaxed);
            if (h == CK_INVALID_HANDLE) {
                static const CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
                auto found =
                    find_objects(*this, s, {attr(CKA_CLASS, cls), attr_bytes(CKA_ID, key.id)});
                if (found.empty()) require_login(*this, s);
                if (found.empty())
                    throw KeyGone("key not found: no private key with id " + encoding::hex(key.id) +
                                      " on " + description_ + " (was it destroyed?)",
                                  CKR_KEY_HANDLE_INVALID);
                h = found.front();
                key.handle.store(h, std::memory_order_relaxed);
            }
            const CK_RV rv = fn()->C_SignInit(s, &m, h);
            if ((rv == CKR_KEY_HANDLE_INVALID || rv == CKR_OBJECT_HANDLE_INVALID) && attempt == 0) {
                key.handle.store(CK_INVALID_HANDLE, std::memory_order_relaxed);
                continue;
            }
            if (rv != CKR_OK) check(rv, "C_SignInit", "key id " + encoding::hex(key.id));
            break;
        }
        std::string sig(max_sig, '\0');
        CK_ULONG len = max_sig;
        const CK_RV rv = fn()->C_Sign(s, const_cast<CK_BYTE*>(data.data()), data.size(),
                                      reinterpret_cast<CK_BYTE*>(sig.data()), &len);
        if (rv != CKR_OK) check(rv, "C_Sign", "key id " + encoding::hex(key.id));
        sig.resize(len);
        return sig;
    });
}

}  // namespace mtls::pkcs11
