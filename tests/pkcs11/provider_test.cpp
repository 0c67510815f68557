// The OpenSSL provider: keys loaded by pkcs11: URI sign on the token (ECDSA, RSA PKCS#1 v1.5,
// RSA-PSS), expose their public parts and parameters, never their private parts, and sign
// CSRs that `openssl req -verify` accepts.
#include <gtest/gtest.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <filesystem>

#include "common/encoding.hpp"
#include "common/ossl_error.hpp"
#include "pkcs11/provider/provider.hpp"
#include "tests/pkcs11/token_env.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/test_pki.hpp"

using namespace mtls;
using config::KeyType;

namespace {

struct Fixture {
    std::shared_ptr<pkcs11::Token> token = test::open_test_token();
    std::shared_ptr<pkcs11::ProviderContext> prov =
        std::make_shared<pkcs11::ProviderContext>(token);
};

enum class Pad { none, pkcs1, pss_digest, pss_max };

std::string digest_sign(EVP_PKEY* key, const char* md, Pad pad, const std::string& msg) {
    ossl::MdCtx ctx(EVP_MD_CTX_new());
    EVP_PKEY_CTX* pctx = nullptr;
    if (EVP_DigestSignInit_ex(ctx.get(), &pctx, md, nullptr, nullptr, key, nullptr) != 1)
        throw ossl::Error("EVP_DigestSignInit_ex");
    if (pad == Pad::pkcs1 && EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1)
        throw ossl::Error("pad");
    if ((pad == Pad::pss_digest || pad == Pad::pss_max) &&
        (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
         EVP_PKEY_CTX_set_rsa_pss_saltlen(
             pctx, pad == Pad::pss_digest ? RSA_PSS_SALTLEN_DIGEST : RSA_PSS_SALTLEN_MAX) != 1))
        throw ossl::Error("pss");
    size_t len = 0;
    const auto* m = reinterpret_cast<const unsigned char*>(msg.data());
    if (EVP_DigestSign(ctx.get(), nullptr, &len, m, msg.size()) != 1) throw ossl::Error("size");
    std::string sig(len, '\0');
    if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len, m,
                       msg.size()) != 1)
        throw ossl::Error("EVP_DigestSign");
    sig.resize(len);
    return sig;
}

bool verify(EVP_PKEY* pub, const char* md, Pad pad, const std::string& msg, const std::string& sig,
            int salt = RSA_PSS_SALTLEN_AUTO) {
    ossl::MdCtx ctx(EVP_MD_CTX_new());
    EVP_PKEY_CTX* pctx = nullptr;
    if (EVP_DigestVerifyInit_ex(ctx.get(), &pctx, md, nullptr, nullptr, pub, nullptr) != 1)
        return false;
    if (pad == Pad::pss_digest || pad == Pad::pss_max) {
        EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING);
        EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, salt);
    }
    return EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(sig.data()),
                            sig.size(), reinterpret_cast<const unsigned char*>(msg.data()),
                            msg.size()) == 1;
}

class ProviderKeyTest : public ::testing::TestWithParam<KeyType> {};

TEST_P(ProviderKeyTest, SignsOnTheTokenAndVerifiesWithThePublicKey) {
    Fixture f;
    const auto info = f.token->generate_key(GetParam(), "prov-sign");
    auto key = f.prov->load_private_key(info.id);
    auto pub = f.token->public_key(info.id);
    const std::string msg = "to be signed on the token";
    ERR_clear_error();
    digest_sign(key.get(), "SHA256", test::is_ec(GetParam()) ? Pad::none : Pad::pss_digest, msg);
    // OpenSSL's detour (export to the default provider refused, fallback to ours) leaves
    // nothing on the error queue that libssl could mistake for a failure.
    EXPECT_EQ(ERR_peek_error(), 0u) << ossl::drain_errors();
    if (test::is_ec(GetParam())) {
        for (const char* md : {"SHA256", "SHA384", "SHA512"}) {
            const auto sig = digest_sign(key.get(), md, Pad::none, msg);
            EXPECT_TRUE(verify(pub.get(), md, Pad::none, msg, sig)) << md;
            EXPECT_FALSE(verify(pub.get(), md, Pad::none, msg + "x", sig)) << md;
        }
    } else {
        const auto p1 = digest_sign(key.get(), "SHA256", Pad::pkcs1, msg);
        EXPECT_TRUE(verify(pub.get(), "SHA256", Pad::pkcs1, msg, p1));
        // PKCS#1 v1.5 is deterministic: equal to itself, and checkable with the default provider.
        EXPECT_EQ(p1, digest_sign(key.get(), "SHA256", Pad::pkcs1, msg));
        const auto pss = digest_sign(key.get(), "SHA256", Pad::pss_digest, msg);
        EXPECT_TRUE(verify(pub.get(), "SHA256", Pad::pss_digest, msg, pss, 32));  // TLS 1.3's salt
        EXPECT_FALSE(verify(pub.get(), "SHA256", Pad::pss_digest, msg + "x", pss, 32));
        if (f.token->module().is_tpm2_pkcs11()) {
            // A TPM's PSS salt is the digest's length, always: a longer one is refused clearly.
            try {
                digest_sign(key.get(), "SHA384", Pad::pss_max, msg);
                ADD_FAILURE() << "a TPM key signed RSA-PSS with the maximum salt";
            } catch (const std::exception& e) {
                EXPECT_NE(std::string(e.what()).find("is not possible with a TPM key"),
                          std::string::npos)
                    << e.what();
            }
        } else {
            const auto pmax = digest_sign(key.get(), "SHA384", Pad::pss_max, msg);
            EXPECT_TRUE(verify(pub.get(), "SHA384", Pad::pss_max, msg, pmax, RSA_PSS_SALTLEN_AUTO));
            EXPECT_FALSE(
                verify(pub.get(), "SHA384", Pad::pss_max, msg, pmax, 48));  // salt was max, not 48
        }
    }
    f.token->destroy_key(info.id);
}

TEST_P(ProviderKeyTest, SignsPrehashedInput) {
    Fixture f;
    const auto info = f.token->generate_key(GetParam(), "prov-prehash");
    auto key = f.prov->load_private_key(info.id);
    auto pub = f.token->public_key(info.id);
    unsigned char digest[32];
    unsigned int dlen = 0;
    EVP_Digest("abc", 3, digest, &dlen, EVP_sha256(), nullptr);
    ossl::PKeyCtx ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, key.get(), nullptr));
    ASSERT_EQ(EVP_PKEY_sign_init(ctx.get()), 1) << ossl::drain_errors();
    ASSERT_EQ(EVP_PKEY_CTX_set_signature_md(ctx.get(), EVP_sha256()), 1) << ossl::drain_errors();
    // A TPM (tpm2-pkcs11) signs a given digest with RSA only as PSS, salt = digest length
    // (PKCS#1 v1.5 there needs the message: tests/tpm).
    const bool pss = !test::is_ec(GetParam()) && f.token->module().is_tpm2_pkcs11();
    if (pss) {
        ASSERT_EQ(EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PSS_PADDING), 1);
        ASSERT_EQ(EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx.get(), RSA_PSS_SALTLEN_DIGEST), 1);
    }
    size_t len = 0;
    ASSERT_EQ(EVP_PKEY_sign(ctx.get(), nullptr, &len, digest, dlen), 1);
    std::string sig(len, '\0');
    ASSERT_EQ(
        EVP_PKEY_sign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len, digest, dlen),
        1)
        << ossl::drain_errors();
    sig.resize(len);
    ossl::PKeyCtx vctx(EVP_PKEY_CTX_new_from_pkey(nullptr, pub.get(), nullptr));
    ASSERT_EQ(EVP_PKEY_verify_init(vctx.get()), 1);
    ASSERT_EQ(EVP_PKEY_CTX_set_signature_md(vctx.get(), EVP_sha256()), 1);
    if (pss) {
        ASSERT_EQ(EVP_PKEY_CTX_set_rsa_padding(vctx.get(), RSA_PKCS1_PSS_PADDING), 1);
    }
    EXPECT_EQ(EVP_PKEY_verify(vctx.get(), reinterpret_cast<const unsigned char*>(sig.data()),
                              sig.size(), digest, dlen),
              1);
    f.token->destroy_key(info.id);
}

TEST_P(ProviderKeyTest, ExposesPublicPartsAndParametersButNoPrivateParts) {
    Fixture f;
    const auto info = f.token->generate_key(GetParam(), "prov-params");
    auto key = f.prov->load_private_key(info.id);
    auto pub = f.token->public_key(info.id);
    const bool ec = test::is_ec(GetParam());
    EXPECT_TRUE(EVP_PKEY_is_a(key.get(), ec ? "EC" : "RSA"));
    EXPECT_EQ(EVP_PKEY_get_bits(key.get()), EVP_PKEY_get_bits(pub.get()));
    EXPECT_EQ(EVP_PKEY_get_security_bits(key.get()), EVP_PKEY_get_security_bits(pub.get()));
    EXPECT_EQ(EVP_PKEY_get_size(key.get()), EVP_PKEY_get_size(pub.get()));
    char name[64] = {};
    EXPECT_EQ(EVP_PKEY_get_default_digest_name(key.get(), name, sizeof name), 1);
    EXPECT_STREQ(name, "SHA256");
    if (ec) {
        char group[64] = {};
        size_t glen = 0;
        ASSERT_EQ(EVP_PKEY_get_group_name(key.get(), group, sizeof group, &glen), 1);
        EXPECT_STREQ(group, GetParam() == KeyType::ec_p256 ? "prime256v1" : "secp384r1");
        EXPECT_EQ(EVP_PKEY_get_ec_point_conv_form(key.get()), POINT_CONVERSION_UNCOMPRESSED);
    } else {
        BIGNUM *n1 = nullptr, *n2 = nullptr, *e1 = nullptr;
        ASSERT_EQ(EVP_PKEY_get_bn_param(key.get(), OSSL_PKEY_PARAM_RSA_N, &n1), 1);
        ASSERT_EQ(EVP_PKEY_get_bn_param(pub.get(), OSSL_PKEY_PARAM_RSA_N, &n2), 1);
        ASSERT_EQ(EVP_PKEY_get_bn_param(key.get(), OSSL_PKEY_PARAM_RSA_E, &e1), 1);
        ossl::BigNum a(n1), b(n2), e(e1);
        EXPECT_EQ(BN_cmp(a.get(), b.get()), 0);
        EXPECT_TRUE(BN_is_word(e.get(), 65537));
    }
    if (ec) {  // (the default provider has no encoded form for RSA keys either)
        unsigned char* enc = nullptr;
        const size_t enclen = EVP_PKEY_get1_encoded_public_key(key.get(), &enc);
        EXPECT_EQ(enclen, GetParam() == KeyType::ec_p256 ? 65u : 97u);
        OPENSSL_free(enc);
    }

    // Same key as the token's public key, a different one from another key.
    EXPECT_EQ(EVP_PKEY_eq(key.get(), pub.get()), 1);
    auto other = test::make_software_key(ec ? "EC" : "RSA");
    EXPECT_NE(EVP_PKEY_eq(key.get(), other.get()), 1);

    // The private half cannot be had: not as parameters, not as PEM, not as DER.
    BIGNUM* priv = nullptr;
    EXPECT_EQ(EVP_PKEY_get_bn_param(key.get(),
                                    ec ? OSSL_PKEY_PARAM_PRIV_KEY : OSSL_PKEY_PARAM_RSA_D, &priv),
              0);
    EXPECT_EQ(priv, nullptr);
    OSSL_PARAM* params = nullptr;
    EXPECT_NE(EVP_PKEY_todata(key.get(), EVP_PKEY_KEYPAIR, &params), 1);
    OSSL_PARAM_free(params);
    ossl::Bio bio(BIO_new(BIO_s_mem()));
    EXPECT_EQ(PEM_write_bio_PrivateKey(bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr),
              0);
    unsigned char* der = nullptr;
    EXPECT_LE(i2d_PrivateKey(key.get(), &der), 0);
    OPENSSL_free(der);
    ERR_clear_error();
    // The public half exports as a SubjectPublicKeyInfo equal to the token's.
    unsigned char *spki1 = nullptr, *spki2 = nullptr;
    const int l1 = i2d_PUBKEY(key.get(), &spki1), l2 = i2d_PUBKEY(pub.get(), &spki2);
    ASSERT_GT(l1, 0) << ossl::drain_errors();
    EXPECT_EQ(std::string(reinterpret_cast<char*>(spki1), l1),
              std::string(reinterpret_cast<char*>(spki2), l2));
    OPENSSL_free(spki1);
    OPENSSL_free(spki2);
    f.token->destroy_key(info.id);
}

TEST_P(ProviderKeyTest, CertificateMatchesKey) {
    Fixture f;
    const auto info = f.token->generate_key(GetParam(), "prov-cert");
    auto key = f.prov->load_private_key(info.id);
    auto ca = test::make_test_ca();
    auto cert = test::issue_cert(ca, key.get(), "host-cert", test::CertUsage::client);
    EXPECT_EQ(X509_check_private_key(cert.get(), key.get()), 1) << ossl::drain_errors();
    auto other = test::make_software_key(test::is_ec(GetParam()) ? "EC" : "RSA");
    auto other_cert = test::issue_cert(ca, other.get(), "other", test::CertUsage::client);
    EXPECT_NE(X509_check_private_key(other_cert.get(), key.get()), 1);
    ERR_clear_error();
    // And through the store: the certificate kept on the token with the key's id.
    f.token->store_certificate(info.id, test::to_der(cert.get()), "prov-cert");
    auto loaded = f.prov->load_certificate(info.id);
    EXPECT_EQ(X509_cmp(loaded.get(), cert.get()), 0);
    f.token->destroy_key(info.id);
}

TEST_P(ProviderKeyTest, SignsCsrThatOpensslVerifies) {
    Fixture f;
    const auto info = f.token->generate_key(GetParam(), "prov-csr");
    auto key = f.prov->load_private_key(info.id);
    ossl::X509ReqPtr req(X509_REQ_new());
    ossl::X509NamePtr name(X509_NAME_new());
    X509_NAME_add_entry_by_txt(name.get(), "CN", MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>("host-17.example"), -1, -1,
                               0);
    X509_REQ_set_subject_name(req.get(), name.get());
    ASSERT_EQ(X509_REQ_set_pubkey(req.get(), key.get()), 1) << ossl::drain_errors();
    ASSERT_GT(X509_REQ_sign(req.get(), key.get(), EVP_sha256()), 0) << ossl::drain_errors();
    EXPECT_EQ(X509_REQ_verify(req.get(), f.token->public_key(info.id).get()), 1);

    ossl::Bio bio(BIO_new(BIO_s_mem()));
    PEM_write_bio_X509_REQ(bio.get(), req.get());
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio.get(), &data);
    const test::TempDir tmp("csr");
    const auto path = tmp.path() / ("csr-" + std::string(test::key_type_name(GetParam())) + ".pem");
    test::write_file(path.string(), std::string(data, static_cast<size_t>(n)));
    const auto r = test::run_command("openssl req -in '" + path.string() + "' -noout -verify");
    EXPECT_EQ(r.status, 0) << r.output;
    EXPECT_NE(r.output.find("verify OK"), std::string::npos) << r.output;

    // The digest-sign path with an explicit context (what the EST client uses).
    ossl::MdCtx md(EVP_MD_CTX_new());
    ASSERT_EQ(
        EVP_DigestSignInit_ex(md.get(), nullptr, "SHA384", nullptr, nullptr, key.get(), nullptr),
        1);
    ASSERT_GT(X509_REQ_sign_ctx(req.get(), md.get()), 0) << ossl::drain_errors();
    EXPECT_EQ(X509_REQ_verify(req.get(), f.token->public_key(info.id).get()), 1);
    f.token->destroy_key(info.id);
}

INSTANTIATE_TEST_SUITE_P(AllTypes, ProviderKeyTest,
                         ::testing::Values(KeyType::ec_p256, KeyType::ec_p384, KeyType::rsa_2048,
                                           KeyType::rsa_3072),
                         [](const auto& p) { return std::string(test::key_type_name(p.param)); });

std::string load_error(const pkcs11::ProviderContext& p, const std::string& uri) {
    try {
        p.load_key(uri);
    } catch (const std::exception& e) {
        return e.what();
    }
    return "";
}

TEST(ProviderErrors, KeyNotFound) {
    Fixture f;
    const std::string id("\xde\xad\xbe\xef", 4);
    try {
        f.prov->load_private_key(id);
        FAIL() << "loaded a key that does not exist";
    } catch (const pkcs11::Error& e) {
        const std::string m = e.what();
        EXPECT_NE(m.find("key not found: no private key with id deadbeef on token \"" +
                         f.token->label() + "\""),
                  std::string::npos)
            << m;
        EXPECT_NE(m.find("module " + test::shared_softhsm_token().module), std::string::npos) << m;
    }
    const std::string byl = load_error(*f.prov, f.token->token_uri() + ";object=nope");
    EXPECT_NE(byl.find("key not found: no private key with label \"nope\""), std::string::npos)
        << byl;
}

// Issue #16 item 6: a key destroyed behind the agent's back is reported as gone — a distinct
// error (pkcs11::KeyGone, CKR_KEY_HANDLE_INVALID) and the token's key-gone observer called
// with its CKA_ID — on the first signature that needs it, not as an unnamed signing failure.
TEST(ProviderErrors, SigningWithADestroyedKeyTellsTheKeyGoneObserver) {
    Fixture f;
    auto info = f.token->generate_key(KeyType::ec_p256, "gone-test");
    auto key = f.prov->load_private_key(info.id);
    ASSERT_FALSE(digest_sign(key.get(), "SHA256", Pad::none, "before").empty());
    std::vector<std::string> gone;
    f.token->set_key_gone_observer([&](const std::string& id) { gone.push_back(id); });
    struct Reset {
        pkcs11::Token& t;
        ~Reset() { t.set_key_gone_observer({}); }
    } reset{*f.token};
    ASSERT_GT(f.token->destroy_key(info.id), 0u);
    std::string error;
    try {
        digest_sign(key.get(), "SHA256", Pad::none, "after");
    } catch (const std::exception& e) {
        error = e.what();
    }
    EXPECT_NE(error, "") << "signed with a destroyed key";
    ASSERT_EQ(gone.size(), 1u);
    EXPECT_EQ(gone.front(), info.id);
    // The same, straight from the token: a KeyGone with CKR_KEY_HANDLE_INVALID.
    pkcs11::PrivateKeyRef ref(info.id);
    CK_MECHANISM mech{CKM_ECDSA, nullptr, 0};
    const unsigned char digest[32] = {};
    try {
        f.token->sign(ref, mech, digest, 64);
        ADD_FAILURE() << "signed with a destroyed key";
    } catch (const pkcs11::KeyGone& e) {
        EXPECT_EQ(e.rv(), static_cast<CK_RV>(CKR_KEY_HANDLE_INVALID));
        EXPECT_NE(std::string(e.what()).find("key not found"), std::string::npos) << e.what();
    }
    EXPECT_EQ(gone.size(), 2u);
}

TEST(ProviderErrors, OtherTokenOrBadUri) {
    Fixture f;
    const std::string other = load_error(*f.prov, "pkcs11:token=someone-else;id=%01");
    EXPECT_NE(
        other.find(
            "token not found: pkcs11:token=someone-else is not the token this provider serves"),
        std::string::npos)
        << other;
    const std::string noobj = load_error(*f.prov, f.token->token_uri());
    EXPECT_NE(noobj.find("names no object"), std::string::npos) << noobj;
    const std::string pin = load_error(*f.prov, f.token->token_uri() + ";id=%01?pin-value=1234");
    EXPECT_NE(pin.find("pin-value is refused"), std::string::npos) << pin;
}

TEST(Provider, LoadsByLabelAndPublicType) {
    Fixture f;
    const auto info = f.token->generate_key(KeyType::ec_p256, "unique-label-77");
    auto key = f.prov->load_key(f.token->token_uri() + ";object=unique-label-77");
    EXPECT_EQ(EVP_PKEY_eq(key.get(), f.token->public_key(info.id).get()), 1);
    auto pubonly = f.prov->load_key(f.token->token_uri() + ";object=unique-label-77;type=public");
    EXPECT_EQ(EVP_PKEY_eq(pubonly.get(), key.get()), 1);
    // A public-only key cannot sign.
    ossl::MdCtx md(EVP_MD_CTX_new());
    unsigned char sig[128];
    size_t len = sizeof sig;
    const bool signed_ok =
        EVP_DigestSignInit_ex(md.get(), nullptr, "SHA256", nullptr, nullptr, pubonly.get(),
                              nullptr) == 1 &&
        EVP_DigestSign(md.get(), sig, &len, reinterpret_cast<const unsigned char*>("x"), 1) == 1;
    EXPECT_FALSE(signed_ok);
    ERR_clear_error();
    f.token->destroy_key(info.id);
}

}  // namespace
