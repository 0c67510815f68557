// Signatures made on the token: ECDSA (CKM_ECDSA over the digest, raw r||s turned into a DER
// ECDSA-Sig-Value), RSA PKCS#1 v1.5 (CKM_RSA_PKCS over a DER DigestInfo built with
// OpenSSL's X509_SIG) and RSA-PSS (CKM_RSA_PKCS_PSS over the digest with hashAlg, MGF1 and
// salt length). Both plain (EVP_PKEY_sign, input = digest) and digest-sign (EVP_DigestSign:
// hashing in OpenSSL's default provider, then the same token operation).
// With tpm2-pkcs11 (a TPM 2.0): PKCS#1 v1.5 goes as CKM_SHA<n>_RSA_PKCS over the message (its
// CKM_RSA_PKCS needs a decrypt-capable key), so only through EVP_DigestSign; RSA-PSS only with
// the digest's length as salt (what the TPM does); ECDSA as everywhere.
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/params.h>
#include <openssl/rsa.h>

#include <cstring>

#include "pkcs11/provider/internal.hpp"

namespace mtls::pkcs11::prov {

namespace {

struct SigCtx {
    ProvCtx* prov = nullptr;
    Alg alg = Alg::ec;
    // The key: owned by the EVP_PKEY, which every EVP_PKEY_CTX using this context holds.
    const KeyData* key = nullptr;
    ossl::Md md;    // set digest (may be null: raw input)
    ossl::Md mgf1;  // RSA-PSS MGF1 digest (null: same as md)
    int pad = RSA_PKCS1_PADDING;
    int saltlen = RSA_PSS_SALTLEN_MAX;  // OpenSSL 3.0's default for PSS signing ("auto" = max)
    ossl::MdCtx mdctx;                  // digest-sign running hash
    // tpm2-pkcs11, RSA: the message itself as well (see tpm_pkcs1_sign); `msg_over` when it
    // grew past kMaxTpmMessage.
    bool keep_msg = false;
    bool msg_over = false;
    std::string msg;
};

// What a digest-sign on tpm2-pkcs11 keeps of the message for PKCS#1 v1.5: TLS signs ~130
// bytes, a CSR's to-be-signed part a few hundred.
constexpr std::size_t kMaxTpmMessage = 64 * 1024;

// Digests are fetched once (from the default library context) and kept for the process:
// fetching per signature costs more than the rest of the provider's work.
ossl::Md fetch_md(const char* name) {
    struct Cache {
        EVP_MD* md[5] = {};
        Cache() {
            const char* names[] = {"SHA1", "SHA224", "SHA256", "SHA384", "SHA512"};
            for (int i = 0; i < 5; ++i) md[i] = EVP_MD_fetch(nullptr, names[i], nullptr);
        }
    };
    static const Cache cache;  // never freed: OpenSSL may be cleaned up before static destructors
    for (EVP_MD* m : cache.md) {
        if (m && EVP_MD_is_a(m, name)) {
            EVP_MD_up_ref(m);
            return ossl::Md(m);
        }
    }
    ossl::Md md(EVP_MD_fetch(nullptr, name, nullptr));
    if (!md) raise(std::string("unknown digest ") + name);
    return md;
}

ossl::Md dup_md(const ossl::Md& md) {
    if (md) EVP_MD_up_ref(md.get());
    return ossl::Md(md.get());
}

CK_MECHANISM_TYPE ck_hash(const EVP_MD* md) {
    switch (EVP_MD_get_type(md)) {
        case NID_sha1:
            return CKM_SHA_1;
        case NID_sha224:
            return CKM_SHA224;
        case NID_sha256:
            return CKM_SHA256;
        case NID_sha384:
            return CKM_SHA384;
        case NID_sha512:
            return CKM_SHA512;
        default:
            return CK_UNAVAILABLE_INFORMATION;
    }
}

CK_RSA_PKCS_MGF_TYPE ck_mgf(const EVP_MD* md) {
    switch (EVP_MD_get_type(md)) {
        case NID_sha1:
            return CKG_MGF1_SHA1;
        case NID_sha224:
            return CKG_MGF1_SHA224;
        case NID_sha256:
            return CKG_MGF1_SHA256;
        case NID_sha384:
            return CKG_MGF1_SHA384;
        case NID_sha512:
            return CKG_MGF1_SHA512;
        default:
            return CK_UNAVAILABLE_INFORMATION;
    }
}

void* sig_newctx(void* provctx, const char* /*propq*/) {
    return guarded<void*>(nullptr, [&] {
        auto* c = new SigCtx();
        c->prov = static_cast<ProvCtx*>(provctx);
        return c;
    });
}

void sig_freectx(void* ctx) {
    delete static_cast<SigCtx*>(ctx);
}

void* sig_dupctx(void* ctx) {
    const auto* src = static_cast<const SigCtx*>(ctx);
    return guarded<void*>(nullptr, [&]() -> void* {
        auto c = std::make_unique<SigCtx>();
        c->prov = src->prov;
        c->alg = src->alg;
        c->key = src->key;
        c->md = dup_md(src->md);
        c->mgf1 = dup_md(src->mgf1);
        c->pad = src->pad;
        c->saltlen = src->saltlen;
        c->keep_msg = src->keep_msg;
        c->msg_over = src->msg_over;
        c->msg = src->msg;
        if (src->mdctx) {
            c->mdctx.reset(EVP_MD_CTX_new());
            if (!c->mdctx || !EVP_MD_CTX_copy_ex(c->mdctx.get(), src->mdctx.get())) return nullptr;
        }
        return c.release();
    });
}

int set_ctx_params(void* vctx, const OSSL_PARAM params[]);

template <Alg A>
int sig_sign_init(void* vctx, void* keydata, const OSSL_PARAM params[]) {
    auto* c = static_cast<SigCtx*>(vctx);
    return guarded(0, [&] {
        if (keydata) {
            const auto* k = static_cast<const KeyData*>(keydata);
            if (!k->priv || !k->token) {
                raise("this key has no private half on a token (public key only)");
                return 0;
            }
            c->key = k;
        }
        if (!c->key) return 0;
        c->alg = A;
        c->mdctx.reset();
        return set_ctx_params(vctx, params);
    });
}

std::size_t field_bytes(const KeyData& k) {
    return static_cast<std::size_t>((k.bits() + 7) / 8);
}

// Signs `tbs` (a digest, or raw input when no digest is set) on the token into sig.
int do_sign(SigCtx* c, unsigned char* sig, size_t* siglen, size_t sigsize, const unsigned char* tbs,
            size_t tbslen) {
    const KeyData& k = *c->key;
    const auto max = static_cast<size_t>(k.max_size());
    if (!sig) {
        *siglen = max;
        return 1;
    }
    if (c->md && tbslen != static_cast<size_t>(EVP_MD_get_size(c->md.get()))) {
        raise("input length " + std::to_string(tbslen) + " does not match the digest " +
              EVP_MD_get0_name(c->md.get()));
        return 0;
    }
    std::string out;
    if (c->alg == Alg::ec) {
        CK_MECHANISM mech{CKM_ECDSA, nullptr, 0};
        const std::size_t n = field_bytes(k);
        const std::string rs = k.token->sign(*k.priv, mech, {tbs, tbslen}, 2 * n);
        if (rs.size() != 2 * n || n == 0) {
            raise("the token returned an ECDSA signature of " + std::to_string(rs.size()) +
                  " bytes, expected " + std::to_string(2 * n) + " (" + k.describe() + ")");
            return 0;
        }
        const auto* p = reinterpret_cast<const unsigned char*>(rs.data());
        ossl::EcdsaSig es(ECDSA_SIG_new());
        BIGNUM* r = BN_bin2bn(p, static_cast<int>(n), nullptr);
        BIGNUM* s = BN_bin2bn(p + n, static_cast<int>(n), nullptr);
        if (!es || !r || !s || !ECDSA_SIG_set0(es.get(), r, s)) {
            BN_free(r);
            BN_free(s);
            raise("cannot build the ECDSA signature");
            return 0;
        }
        const int len = i2d_ECDSA_SIG(es.get(), nullptr);
        if (len <= 0 || static_cast<size_t>(len) > sigsize) {
            raise("signature buffer too small");
            return 0;
        }
        unsigned char* q = sig;
        i2d_ECDSA_SIG(es.get(), &q);
        *siglen = static_cast<size_t>(len);
        return 1;
    }
    // RSA
    if (sigsize < max) {
        raise("signature buffer too small");
        return 0;
    }
    if (c->pad == RSA_PKCS1_PADDING) {
        CK_MECHANISM mech{CKM_RSA_PKCS, nullptr, 0};
        if (k.token->module().is_tpm2_pkcs11()) {
            // tpm2-pkcs11 makes CKM_RSA_PKCS signatures with TPM2_RSA_Decrypt, which our keys
            // (CKA_DECRYPT false) refuse: only the hash-and-sign mechanisms (TPM2_Sign with
            // RSASSA) work, and they need the message, not its digest (tpm_pkcs1_sign).
            raise(
                "RSA PKCS#1 v1.5 over a precomputed digest is not possible with a TPM key "
                "(tpm2-pkcs11 signs it with TPM2_RSA_Decrypt, which a signing-only key "
                "refuses): use EVP_DigestSign, or RSA-PSS (" +
                k.describe() + ")");
            return 0;
        }
        if (!c->md) {
            out = k.token->sign(*k.priv, mech, {tbs, tbslen}, max);
        } else {
            // DigestInfo ::= SEQUENCE { AlgorithmIdentifier (hash OID, NULL), OCTET STRING }
            ossl::X509Sig di(X509_SIG_new());
            X509_ALGOR* alg = nullptr;
            ASN1_OCTET_STRING* digest = nullptr;
            if (!di) return 0;
            X509_SIG_getm(di.get(), &alg, &digest);
            if (!X509_ALGOR_set0(alg, OBJ_nid2obj(EVP_MD_get_type(c->md.get())), V_ASN1_NULL,
                                 nullptr) ||
                !ASN1_OCTET_STRING_set(digest, tbs, static_cast<int>(tbslen))) {
                raise("cannot build the PKCS#1 DigestInfo");
                return 0;
            }
            unsigned char* der = nullptr;
            const int dlen = i2d_X509_SIG(di.get(), &der);
            if (dlen <= 0) {
                raise("cannot encode the PKCS#1 DigestInfo");
                return 0;
            }
            std::string info(reinterpret_cast<char*>(der), static_cast<size_t>(dlen));
            OPENSSL_free(der);
            out = k.token->sign(*k.priv, mech,
                                {reinterpret_cast<const unsigned char*>(info.data()), info.size()},
                                max);
        }
    } else if (c->pad == RSA_PKCS1_PSS_PADDING) {
        if (!c->md) {
            raise("RSA-PSS needs a digest (set one with EVP_PKEY_CTX_set_signature_md)");
            return 0;
        }
        const EVP_MD* mgf = c->mgf1 ? c->mgf1.get() : c->md.get();
        const int hlen = EVP_MD_get_size(c->md.get());
        const int emlen = (k.bits() - 1 + 7) / 8;
        const int maxsalt = emlen - hlen - 2;
        int salt = c->saltlen;
        const bool tpm = k.token->module().is_tpm2_pkcs11();
        if (salt == RSA_PSS_SALTLEN_DIGEST)
            salt = hlen;
        else if (salt == RSA_PSS_SALTLEN_AUTO)
            salt = tpm ? hlen : maxsalt;  // "auto": the verifier finds it; the TPM's is hlen
        else if (salt == RSA_PSS_SALTLEN_MAX)
            salt = maxsalt;
        if (tpm && salt != hlen) {
            // TPM2_Sign with RSAPSS always uses a salt of the digest's length (TPM 2.0 spec
            // 1.38+, libtpms), and tpm2-pkcs11 refuses other lengths.
            raise("RSA-PSS salt length " + std::to_string(salt) +
                  " is not possible with a TPM "
                  "key: the TPM's salt is the digest's length (" +
                  std::to_string(hlen) + ")");
            return 0;
        }
        if (salt < 0 || salt > maxsalt) {
            raise("RSA-PSS salt length " + std::to_string(c->saltlen) + " is not possible with a " +
                  std::to_string(k.bits()) + "-bit key");
            return 0;
        }
        CK_RSA_PKCS_PSS_PARAMS pss{ck_hash(c->md.get()), ck_mgf(mgf), static_cast<CK_ULONG>(salt)};
        if (pss.hashAlg == CK_UNAVAILABLE_INFORMATION || pss.mgf == CK_UNAVAILABLE_INFORMATION) {
            raise("RSA-PSS with this digest is not supported on the token");
            return 0;
        }
        CK_MECHANISM mech{CKM_RSA_PKCS_PSS, &pss, sizeof pss};
        out = k.token->sign(*k.priv, mech, {tbs, tbslen}, max);
    } else {
        raise("RSA padding mode " + std::to_string(c->pad) + " is not supported for signing");
        return 0;
    }
    if (out.size() > sigsize) {
        raise("signature buffer too small");
        return 0;
    }
    std::memcpy(sig, out.data(), out.size());
    *siglen = out.size();
    return 1;
}

int sig_sign(void* vctx, unsigned char* sig, size_t* siglen, size_t sigsize,
             const unsigned char* tbs, size_t tbslen) {
    auto* c = static_cast<SigCtx*>(vctx);
    if (!c->key) return 0;
    return guarded(0, [&] { return do_sign(c, sig, siglen, sigsize, tbs, tbslen); });
}

template <Alg A>
int sig_digest_sign_init(void* vctx, const char* mdname, void* keydata, const OSSL_PARAM params[]) {
    auto* c = static_cast<SigCtx*>(vctx);
    if (!sig_sign_init<A>(vctx, keydata, params)) return 0;
    return guarded(0, [&] {
        if (mdname && *mdname) {
            c->md = fetch_md(mdname);
            if (!c->md) return 0;
        } else if (!c->md) {
            c->md = fetch_md("SHA256");
        }
        if (ck_hash(c->md.get()) == CK_UNAVAILABLE_INFORMATION) {
            raise(std::string("digest ") + EVP_MD_get0_name(c->md.get()) + " is not supported");
            return 0;
        }
        c->keep_msg = A == Alg::rsa && c->key->token->module().is_tpm2_pkcs11();
        c->msg_over = false;
        c->msg.clear();
        c->mdctx.reset(EVP_MD_CTX_new());
        return (c->mdctx && EVP_DigestInit_ex2(c->mdctx.get(), c->md.get(), nullptr)) ? 1 : 0;
    });
}

int sig_digest_sign_update(void* vctx, const unsigned char* data, size_t datalen) {
    auto* c = static_cast<SigCtx*>(vctx);
    if (!c->mdctx) return 0;
    if (c->keep_msg && !c->msg_over) {
        if (c->msg.size() + datalen > kMaxTpmMessage) {
            c->msg_over = true;
            c->msg.clear();
        } else {
            c->msg.append(reinterpret_cast<const char*>(data), datalen);
        }
    }
    return EVP_DigestUpdate(c->mdctx.get(), data, datalen);
}

// RSA PKCS#1 v1.5 on tpm2-pkcs11: CKM_SHA<n>_RSA_PKCS over the message (the module hashes it
// and the TPM signs the digest with TPM2_Sign, scheme RSASSA).
int tpm_pkcs1_sign(SigCtx* c, unsigned char* sig, size_t* siglen, size_t sigsize) {
    const KeyData& k = *c->key;
    if (c->msg_over) {
        raise("RSA PKCS#1 v1.5 with a TPM key signs the message itself, and this one is over " +
              std::to_string(kMaxTpmMessage) + " bytes (" + k.describe() + ")");
        return 0;
    }
    CK_MECHANISM_TYPE m = CK_UNAVAILABLE_INFORMATION;
    switch (EVP_MD_get_type(c->md.get())) {
        case NID_sha256:
            m = CKM_SHA256_RSA_PKCS;
            break;
        case NID_sha384:
            m = CKM_SHA384_RSA_PKCS;
            break;
        case NID_sha512:
            m = CKM_SHA512_RSA_PKCS;
            break;
        case NID_sha1:
            m = CKM_SHA1_RSA_PKCS;
            break;
        default:
            raise(std::string("RSA PKCS#1 v1.5 with ") + EVP_MD_get0_name(c->md.get()) +
                  " is not offered by tpm2-pkcs11 (" + k.describe() + ")");
            return 0;
    }
    const auto max = static_cast<size_t>(k.max_size());
    if (sigsize < max) {
        raise("signature buffer too small");
        return 0;
    }
    CK_MECHANISM mech{m, nullptr, 0};
    const std::string out = k.token->sign(
        *k.priv, mech, {reinterpret_cast<const unsigned char*>(c->msg.data()), c->msg.size()}, max);
    if (out.size() > sigsize) {
        raise("signature buffer too small");
        return 0;
    }
    std::memcpy(sig, out.data(), out.size());
    *siglen = out.size();
    return 1;
}

int sig_digest_sign_final(void* vctx, unsigned char* sig, size_t* siglen, size_t sigsize) {
    auto* c = static_cast<SigCtx*>(vctx);
    if (!c->mdctx || !c->key) return 0;
    if (!sig) {
        *siglen = static_cast<size_t>(c->key->max_size());
        return 1;
    }
    if (c->keep_msg && c->pad == RSA_PKCS1_PADDING)
        return guarded(0, [&] { return tpm_pkcs1_sign(c, sig, siglen, sigsize); });
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    if (!EVP_DigestFinal_ex(c->mdctx.get(), digest, &dlen)) return 0;
    return guarded(0, [&] { return do_sign(c, sig, siglen, sigsize, digest, dlen); });
}

// DER AlgorithmIdentifier of the signature, for X509_REQ_sign_ctx / ASN1_item_sign_ctx.
std::string algorithm_id(const SigCtx* c) {
    if (!c->md) return {};
    int sig_nid = NID_undef;
    const int pkey_nid = c->alg == Alg::ec ? NID_X9_62_id_ecPublicKey : NID_rsaEncryption;
    if (c->alg == Alg::rsa && c->pad != RSA_PKCS1_PADDING) return {};  // PSS: not offered
    if (!OBJ_find_sigid_by_algs(&sig_nid, EVP_MD_get_type(c->md.get()), pkey_nid)) return {};
    ossl::X509Algor alg(X509_ALGOR_new());
    if (!alg || !X509_ALGOR_set0(alg.get(), OBJ_nid2obj(sig_nid),
                                 c->alg == Alg::ec ? V_ASN1_UNDEF : V_ASN1_NULL, nullptr))
        return {};
    unsigned char* der = nullptr;
    const int n = i2d_X509_ALGOR(alg.get(), &der);
    if (n <= 0) return {};
    std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(n));
    OPENSSL_free(der);
    return out;
}

int sig_get_ctx_params(void* vctx, OSSL_PARAM params[]) {
    auto* c = static_cast<SigCtx*>(vctx);
    return guarded(0, [&] {
        OSSL_PARAM* p = OSSL_PARAM_locate(params, OSSL_SIGNATURE_PARAM_ALGORITHM_ID);
        if (p) {
            const std::string aid = algorithm_id(c);
            if (!OSSL_PARAM_set_octet_string(p, aid.data(), aid.size())) return 0;
        }
        p = OSSL_PARAM_locate(params, OSSL_SIGNATURE_PARAM_DIGEST);
        if (p && c->md && !OSSL_PARAM_set_utf8_string(p, EVP_MD_get0_name(c->md.get()))) return 0;
        p = OSSL_PARAM_locate(params, OSSL_SIGNATURE_PARAM_PAD_MODE);
        if (p && c->alg == Alg::rsa && !OSSL_PARAM_set_int(p, c->pad)) return 0;
        p = OSSL_PARAM_locate(params, OSSL_SIGNATURE_PARAM_PSS_SALTLEN);
        if (p && c->alg == Alg::rsa && !OSSL_PARAM_set_int(p, c->saltlen)) return 0;
        return 1;
    });
}

const OSSL_PARAM kEcGettableCtx[] = {
    OSSL_PARAM_octet_string(OSSL_SIGNATURE_PARAM_ALGORITHM_ID, nullptr, 0),
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST, nullptr, 0), OSSL_PARAM_END};
const OSSL_PARAM kRsaGettableCtx[] = {
    OSSL_PARAM_octet_string(OSSL_SIGNATURE_PARAM_ALGORITHM_ID, nullptr, 0),
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST, nullptr, 0),
    OSSL_PARAM_int(OSSL_SIGNATURE_PARAM_PAD_MODE, nullptr),
    OSSL_PARAM_int(OSSL_SIGNATURE_PARAM_PSS_SALTLEN, nullptr), OSSL_PARAM_END};

template <Alg A>
const OSSL_PARAM* sig_gettable_ctx_params(void*, void*) {
    return A == Alg::ec ? kEcGettableCtx : kRsaGettableCtx;
}

int set_ctx_params(void* vctx, const OSSL_PARAM params[]) {
    auto* c = static_cast<SigCtx*>(vctx);
    if (!params) return 1;
    const OSSL_PARAM* p = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_DIGEST);
    if (p) {
        const char* name = nullptr;
        if (!OSSL_PARAM_get_utf8_string_ptr(p, &name)) return 0;
        auto md = fetch_md(name);
        if (!md) return 0;
        if (ck_hash(md.get()) == CK_UNAVAILABLE_INFORMATION) {
            raise(std::string("digest ") + name + " is not supported");
            return 0;
        }
        c->md = std::move(md);
    }
    p = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_PAD_MODE);
    if (p) {
        int pad = 0;
        if (p->data_type == OSSL_PARAM_UTF8_STRING) {
            const char* s = nullptr;
            if (!OSSL_PARAM_get_utf8_string_ptr(p, &s)) return 0;
            if (std::strcmp(s, OSSL_PKEY_RSA_PAD_MODE_PKCSV15) == 0)
                pad = RSA_PKCS1_PADDING;
            else if (std::strcmp(s, OSSL_PKEY_RSA_PAD_MODE_PSS) == 0)
                pad = RSA_PKCS1_PSS_PADDING;
            else {
                raise(std::string("RSA padding mode ") + s + " is not supported for signing");
                return 0;
            }
        } else if (!OSSL_PARAM_get_int(p, &pad)) {
            return 0;
        }
        if (pad != RSA_PKCS1_PADDING && pad != RSA_PKCS1_PSS_PADDING) {
            raise("RSA padding mode " + std::to_string(pad) + " is not supported for signing");
            return 0;
        }
        c->pad = pad;
    }
    p = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_PSS_SALTLEN);
    if (p) {
        int salt = 0;
        if (p->data_type == OSSL_PARAM_UTF8_STRING) {
            const char* s = nullptr;
            if (!OSSL_PARAM_get_utf8_string_ptr(p, &s)) return 0;
            if (std::strcmp(s, OSSL_PKEY_RSA_PSS_SALT_LEN_DIGEST) == 0)
                salt = RSA_PSS_SALTLEN_DIGEST;
            else if (std::strcmp(s, OSSL_PKEY_RSA_PSS_SALT_LEN_MAX) == 0)
                salt = RSA_PSS_SALTLEN_MAX;
            else if (std::strcmp(s, OSSL_PKEY_RSA_PSS_SALT_LEN_AUTO) == 0)
                salt = RSA_PSS_SALTLEN_AUTO;
            else
                salt = std::atoi(s);
        } else if (!OSSL_PARAM_get_int(p, &salt)) {
            return 0;
        }
        c->saltlen = salt;
    }
    p = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_MGF1_DIGEST);
    if (p) {
        const char* name = nullptr;
        if (!OSSL_PARAM_get_utf8_string_ptr(p, &name)) return 0;
        auto md = fetch_md(name);
        if (!md) return 0;
        c->mgf1 = std::move(md);
    }
    return 1;
}

int sig_set_ctx_params(void* vctx, const OSSL_PARAM params[]) {
    return guarded(0, [&] { return set_ctx_params(vctx, params); });
}

const OSSL_PARAM kEcSettableCtx[] = {
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST, nullptr, 0),
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PROPERTIES, nullptr, 0), OSSL_PARAM_END};
const OSSL_PARAM kRsaSettableCtx[] = {
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST, nullptr, 0),
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PROPERTIES, nullptr, 0),
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PAD_MODE, nullptr, 0),
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PSS_SALTLEN, nullptr, 0),
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_MGF1_DIGEST, nullptr, 0),
    OSSL_PARAM_END};

template <Alg A>
const OSSL_PARAM* sig_settable_ctx_params(void*, void*) {
    return A == Alg::ec ? kEcSettableCtx : kRsaSettableCtx;
}

#define MTLS_FN(id, f) \
    { id, reinterpret_cast<void (*)(void)>(f) }

}  // namespace

const OSSL_DISPATCH kEcdsaSignature[] = {
    MTLS_FN(OSSL_FUNC_SIGNATURE_NEWCTX, &sig_newctx),
    MTLS_FN(OSSL_FUNC_SIGNATURE_FREECTX, &sig_freectx),
    MTLS_FN(OSSL_FUNC_SIGNATURE_DUPCTX, &sig_dupctx),
    MTLS_FN(OSSL_FUNC_SIGNATURE_SIGN_INIT, &sig_sign_init<Alg::ec>),
    MTLS_FN(OSSL_FUNC_SIGNATURE_SIGN, &sig_sign),
    MTLS_FN(OSSL_FUNC_SIGNATURE_DIGEST_SIGN_INIT, &sig_digest_sign_init<Alg::ec>),
    MTLS_FN(OSSL_FUNC_SIGNATURE_DIGEST_SIGN_UPDATE, &sig_digest_sign_update),
    MTLS_FN(OSSL_FUNC_SIGNATURE_DIGEST_SIGN_FINAL, &sig_digest_sign_final),
    MTLS_FN(OSSL_FUNC_SIGNATURE_GET_CTX_PARAMS, &sig_get_ctx_params),
    MTLS_FN(OSSL_FUNC_SIGNATURE_GETTABLE_CTX_PARAMS, &sig_gettable_ctx_params<Alg::ec>),
    MTLS_FN(OSSL_FUNC_SIGNATURE_SET_CTX_PARAMS, &sig_set_ctx_params),
    MTLS_FN(OSSL_FUNC_SIGNATURE_SETTABLE_CTX_PARAMS, &sig_settable_ctx_params<Alg::ec>),
    {0, nullptr}};

const OSSL_DISPATCH kRsaSignature[] = {
    MTLS_FN(OSSL_FUNC_SIGNATURE_NEWCTX, &sig_newctx),
    MTLS_FN(OSSL_FUNC_SIGNATURE_FREECTX, &sig_freectx),
    MTLS_FN(OSSL_FUNC_SIGNATURE_DUPCTX, &sig_dupctx),
    MTLS_FN(OSSL_FUNC_SIGNATURE_SIGN_INIT, &sig_sign_init<Alg::rsa>),
    MTLS_FN(OSSL_FUNC_SIGNATURE_SIGN, &sig_sign),
    MTLS_FN(OSSL_FUNC_SIGNATURE_DIGEST_SIGN_INIT, &sig_digest_sign_init<Alg::rsa>),
    MTLS_FN(OSSL_FUNC_SIGNATURE_DIGEST_SIGN_UPDATE, &sig_digest_sign_update),
    MTLS_FN(OSSL_FUNC_SIGNATURE_DIGEST_SIGN_FINAL, &sig_digest_sign_final),
    MTLS_FN(OSSL_FUNC_SIGNATURE_GET_CTX_PARAMS, &sig_get_ctx_params),
    MTLS_FN(OSSL_FUNC_SIGNATURE_GETTABLE_CTX_PARAMS, &sig_gettable_ctx_params<Alg::rsa>),
    MTLS_FN(OSSL_FUNC_SIGNATURE_SET_CTX_PARAMS, &sig_set_ctx_params),
    MTLS_FN(OSSL_FUNC_SIGNATURE_SETTABLE_CTX_PARAMS, &sig_settable_ctx_params<Alg::rsa>),
    {0, nullptr}};

}  // namespace mtls::pkcs11::prov
