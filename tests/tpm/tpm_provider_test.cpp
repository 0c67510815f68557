// What only a TPM key refuses, and how: RSA PKCS#1 v1.5 over a digest the caller computed
// (tpm2-pkcs11 would need a decrypt-capable key) fails with our message, not the module's
// CKR_GENERAL_ERROR; the same signature through EVP_DigestSign works and verifies.
#include <gtest/gtest.h>
#include <openssl/rsa.h>

#include "common/ossl_error.hpp"
#include "pkcs11/provider/provider.hpp"
#include "tests/pkcs11/token_env.hpp"

namespace {

using namespace mtls;

TEST(TpmProvider, Pkcs1OverAGivenDigestIsRefusedClearlyDigestSignWorks) {
    auto token = test::open_test_token();
    ASSERT_TRUE(token->module().is_tpm2_pkcs11());
    const auto info = token->generate_key(config::KeyType::rsa_2048, "tpm-pkcs1");
    pkcs11::ProviderContext prov(token);
    auto key = prov.load_private_key(info.id);

    unsigned char digest[32] = {1, 2, 3};
    ossl::PKeyCtx ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, key.get(), nullptr));
    ASSERT_EQ(EVP_PKEY_sign_init(ctx.get()), 1);
    ASSERT_EQ(EVP_PKEY_CTX_set_signature_md(ctx.get(), EVP_sha256()), 1);
    ASSERT_EQ(EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PADDING), 1);
    unsigned char sig[512];
    size_t len = sizeof sig;
    EXPECT_NE(EVP_PKEY_sign(ctx.get(), sig, &len, digest, sizeof digest), 1);
    const std::string err = ossl::drain_errors();
    EXPECT_NE(err.find("RSA PKCS#1 v1.5 over a precomputed digest is not possible with a TPM key"),
              std::string::npos)
        << err;
    EXPECT_EQ(err.find("CKR_GENERAL_ERROR"), std::string::npos) << err;

    const std::string msg = "to be signed in the TPM";
    ossl::MdCtx md(EVP_MD_CTX_new());
    EVP_PKEY_CTX* pctx = nullptr;
    ASSERT_EQ(
        EVP_DigestSignInit_ex(md.get(), &pctx, "SHA256", nullptr, nullptr, key.get(), nullptr), 1);
    ASSERT_EQ(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING), 1);
    len = sizeof sig;
    ASSERT_EQ(EVP_DigestSign(md.get(), sig, &len,
                             reinterpret_cast<const unsigned char*>(msg.data()), msg.size()),
              1)
        << ossl::drain_errors();
    auto pub = token->public_key(info.id);
    ossl::MdCtx vmd(EVP_MD_CTX_new());
    EVP_PKEY_CTX* vctx = nullptr;
    ASSERT_EQ(
        EVP_DigestVerifyInit_ex(vmd.get(), &vctx, "SHA256", nullptr, nullptr, pub.get(), nullptr),
        1);
    ASSERT_EQ(EVP_PKEY_CTX_set_rsa_padding(vctx, RSA_PKCS1_PADDING), 1);
    EXPECT_EQ(EVP_DigestVerify(vmd.get(), sig, len,
                               reinterpret_cast<const unsigned char*>(msg.data()), msg.size()),
              1);
    key.reset();
    token->destroy_key(info.id);
}

}  // namespace
