// The token layer against a real SoftHSM2 token: key generation (non-extractable), listing,
// certificates, error messages, and recovery after the sessions are closed under us.
#include <gtest/gtest.h>

#include <atomic>
#include <barrier>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include <openssl/err.h>

#include "common/encoding.hpp"
#include "common/ossl_error.hpp"
#include "pkcs11/provider/provider.hpp"
#include "tests/pkcs11/token_env.hpp"
#include "tests/support/test_pki.hpp"

using namespace mtls;
using config::KeyType;

namespace {

std::string open_error(const pkcs11::TokenOptions& o) {
    try {
        pkcs11::Token::open(o);
    } catch (const pkcs11::Error& e) {
        return e.what();
    }
    return "";
}

// A session of our own on the token's module (shares the process's login state).
struct RawSession {
    explicit RawSession(pkcs11::Token& t) : fn(t.fn()) {
        EXPECT_EQ(fn->C_OpenSession(t.slot(), CKF_SERIAL_SESSION, nullptr, nullptr, &h), CKR_OK);
    }
    ~RawSession() { fn->C_CloseSession(h); }
    CK_OBJECT_HANDLE find(CK_OBJECT_CLASS cls, const std::string& id) {
        CK_ATTRIBUTE tmpl[] = {{CKA_CLASS, &cls, sizeof cls},
                               {CKA_ID, const_cast<char*>(id.data()), id.size()}};
        EXPECT_EQ(fn->C_FindObjectsInit(h, tmpl, 2), CKR_OK);
        CK_OBJECT_HANDLE o = CK_INVALID_HANDLE;
        CK_ULONG n = 0;
        EXPECT_EQ(fn->C_FindObjects(h, &o, 1, &n), CKR_OK);
        fn->C_FindObjectsFinal(h);
        return n == 1 ? o : CK_INVALID_HANDLE;
    }
    CK_RV get(CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type, std::string* out = nullptr) {
        CK_ATTRIBUTE a{type, nullptr, 0};
        CK_RV rv = fn->C_GetAttributeValue(h, o, &a, 1);
        if (rv != CKR_OK) return rv;
        std::string v(a.ulValueLen, '\0');
        a.pValue = v.data();
        rv = fn->C_GetAttributeValue(h, o, &a, 1);
        if (out) *out = v;
        return rv;
    }
    bool get_bool(CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type) {
        CK_BBOOL b = CK_FALSE;
        CK_ATTRIBUTE a{type, &b, sizeof b};
        EXPECT_EQ(fn->C_GetAttributeValue(h, o, &a, 1), CKR_OK);
        return b == CK_TRUE;
    }
    CK_FUNCTION_LIST* fn;
    CK_SESSION_HANDLE h = CK_INVALID_HANDLE;
};

class KeyTypeTest : public ::testing::TestWithParam<KeyType> {};

TEST_P(KeyTypeTest, GeneratedKeyStaysOnTheToken) {
    auto token = test::open_test_token();
    const auto k = token->generate_key(GetParam(), "gen-test");
    EXPECT_EQ(k.id.size(), 16u);
    EXPECT_EQ(k.type, GetParam());
    EXPECT_EQ(k.label, "gen-test");
    EXPECT_EQ(pkcs11::Uri::parse(k.uri).id, k.id);
    EXPECT_EQ(pkcs11::Uri::parse(k.uri).type, "private");

    // Cryptoki, in-process, is the authoritative check: the token itself must refuse to
    // reveal the private key's secret attributes.
    RawSession s(*token);
    const CK_OBJECT_HANDLE priv = s.find(CKO_PRIVATE_KEY, k.id);
    ASSERT_NE(priv, CK_INVALID_HANDLE);
    EXPECT_TRUE(s.get_bool(priv, CKA_SENSITIVE));
    EXPECT_FALSE(s.get_bool(priv, CKA_EXTRACTABLE));
    EXPECT_TRUE(s.get_bool(priv, CKA_ALWAYS_SENSITIVE));
    EXPECT_TRUE(s.get_bool(priv, CKA_NEVER_EXTRACTABLE));
    EXPECT_TRUE(s.get_bool(priv, CKA_PRIVATE));
    EXPECT_TRUE(s.get_bool(priv, CKA_TOKEN));
    EXPECT_TRUE(s.get_bool(priv, CKA_SIGN));
    // (tpm2-pkcs11 has no such attributes at all — the key never leaves the TPM unwrapped —
    // and says CKR_ATTRIBUTE_TYPE_INVALID.)
    const CK_RV refused =
        token->module().is_tpm2_pkcs11() ? CKR_ATTRIBUTE_TYPE_INVALID : CKR_ATTRIBUTE_SENSITIVE;
    if (test::is_ec(GetParam())) {
        EXPECT_EQ(s.get(priv, CKA_VALUE), refused);
    } else {
        for (CK_ATTRIBUTE_TYPE a : {CKA_PRIVATE_EXPONENT, CKA_PRIME_1, CKA_PRIME_2, CKA_EXPONENT_1,
                                    CKA_EXPONENT_2, CKA_COEFFICIENT})
            EXPECT_EQ(s.get(priv, a), refused) << "attribute " << a;
    }
    // Nor may it be made extractable afterwards.
    CK_BBOOL yes = CK_TRUE;
    CK_ATTRIBUTE set{CKA_EXTRACTABLE, &yes, sizeof yes};
    EXPECT_NE(s.fn->C_SetAttributeValue(s.h, priv, &set, 1), CKR_OK);
    // The public half is there and readable.
    const CK_OBJECT_HANDLE pub = s.find(CKO_PUBLIC_KEY, k.id);
    ASSERT_NE(pub, CK_INVALID_HANDLE);
    auto pk = token->public_key(k.id);
    ASSERT_TRUE(pk);
    EXPECT_TRUE(EVP_PKEY_is_a(pk.get(), test::is_ec(GetParam()) ? "EC" : "RSA"));
    const int bits[] = {256, 384, 2048, 3072};
    EXPECT_EQ(EVP_PKEY_get_bits(pk.get()), bits[static_cast<int>(GetParam())]);
    token->destroy_key(k.id);
}

INSTANTIATE_TEST_SUITE_P(AllTypes, KeyTypeTest,
                         ::testing::Values(KeyType::ec_p256, KeyType::ec_p384, KeyType::rsa_2048,
                                           KeyType::rsa_3072),
                         [](const auto& p) { return std::string(test::key_type_name(p.param)); });

// An independent tool, pkcs11-tool (OpenSC), sees the private key as sensitive and never
// extractable, and cannot read it out. The PIN reaches pkcs11-tool as `--pin env:VAR` (OpenSC
// 0.23 reads the variable), so it is never on a command line; stdin does not work (its
// prompt needs a terminal). This is a throwaway test token anyway. The in-process Cryptoki
// checks above are the authoritative ones.
TEST(Token, Pkcs11ToolSeesANonExtractableKey) {
    auto token = test::open_test_token();
    const auto k = token->generate_key(KeyType::ec_p256, "tool-check");
    const auto& t = test::shared_softhsm_token();
    const std::string base =
        "pkcs11-tool --module '" + t.module + "' --token-label '" + t.label + "'";

    // Without logging in: only the public key is visible.
    const auto pub = test::run_command(base + " --list-objects");
    EXPECT_EQ(pub.status, 0) << pub.output;
    EXPECT_NE(pub.output.find("tool-check"), std::string::npos) << pub.output;
    EXPECT_NE(pub.output.find("Public Key Object"), std::string::npos) << pub.output;
    EXPECT_EQ(pub.output.find("Private Key Object"), std::string::npos) << pub.output;

    ::setenv("MTLS_TEST_P11TOOL_PIN", t.user_pin().c_str(), 1);
    const std::string login = base + " --login --pin env:MTLS_TEST_P11TOOL_PIN";
    const auto priv =
        test::run_command(login + " --list-objects --type privkey --id " + encoding::hex(k.id));
    EXPECT_EQ(priv.status, 0) << priv.output;
    EXPECT_NE(priv.output.find("Private Key Object; EC"), std::string::npos) << priv.output;
    EXPECT_NE(priv.output.find("Access:     sensitive, always sensitive, never extractable, local"),
              std::string::npos)
        << priv.output;
    EXPECT_NE(priv.output.find("Usage:      sign"), std::string::npos) << priv.output;

    const std::string out = (t.dir / "privkey.out").string();
    const auto read = test::run_command(login + " --read-object --type privkey --id " +
                                        encoding::hex(k.id) + " -o '" + out + "'");
    ::unsetenv("MTLS_TEST_P11TOOL_PIN");
    EXPECT_FALSE(std::filesystem::exists(out) && std::filesystem::file_size(out) > 0)
        << read.output;
    EXPECT_EQ(read.output.find(t.user_pin()), std::string::npos);
    token->destroy_key(k.id);
}

TEST(Token, ListFindAndDestroy) {
    auto token = test::open_test_token();
    const auto a = token->generate_key(KeyType::ec_p256, "list-a");
    const auto b = token->generate_key(KeyType::ec_p384, "list-b");
    const auto keys = token->list_keys();
    auto has = [&](const std::string& id) {
        for (const auto& k : keys)
            if (k.id == id) return true;
        return false;
    };
    EXPECT_TRUE(has(a.id));
    EXPECT_TRUE(has(b.id));
    auto fa = token->find_key(a.id);
    ASSERT_TRUE(fa);
    EXPECT_EQ(fa->label, "list-a");
    EXPECT_EQ(fa->type, KeyType::ec_p256);
    EXPECT_EQ(fa->uri, a.uri);
    auto byl = token->find_keys_by_label("list-b");
    ASSERT_EQ(byl.size(), 1u);
    EXPECT_EQ(byl[0].id, b.id);
    EXPECT_EQ(byl[0].type, KeyType::ec_p384);

    EXPECT_EQ(token->destroy_key(a.id), 2u);  // private + public key
    EXPECT_FALSE(token->find_key(a.id));
    EXPECT_TRUE(token->find_key(b.id));
    EXPECT_EQ(token->destroy_key(a.id), 0u);
    EXPECT_EQ(token->destroy_keys_by_label("list-b"), 2u);
    EXPECT_FALSE(token->find_key(b.id));
}

// The key id the agent chose (instance id + random, recorded before generating) is the one
// the pair gets; list_objects() sees both halves, public key included.
TEST(Token, GeneratesWithAGivenIdAndListsEveryObject) {
    auto token = test::open_test_token();
    const std::string id("\x01\x02\x03\x04\x05\x06\x07\x08given-id", 16);
    const auto k = token->generate_key(KeyType::ec_p256, "given-id", id);
    EXPECT_EQ(k.id, id);
    ASSERT_TRUE(token->find_key(id));
    int pub = 0, priv = 0;
    for (const auto& o : token->list_objects()) {
        if (o.id != id) continue;
        EXPECT_EQ(o.label, "given-id");
        if (o.cls == CKO_PUBLIC_KEY) ++pub;
        if (o.cls == CKO_PRIVATE_KEY) ++priv;
    }
    EXPECT_EQ(pub, 1);
    EXPECT_EQ(priv, 1);
    EXPECT_EQ(token->destroy_key(id), 2u);
}

TEST(Token, StoresAndFindsCertificates) {
    auto token = test::open_test_token();
    const auto k = token->generate_key(KeyType::ec_p256, "cert-key");
    auto ca = test::make_test_ca();
    auto pub = token->public_key(k.id);
    auto cert = test::issue_cert(ca, pub.get(), "host-17", test::CertUsage::client);
    const std::string der = test::to_der(cert.get());
    EXPECT_FALSE(token->find_certificate(k.id));
    token->store_certificate(k.id, der, "cert-key");
    EXPECT_EQ(token->find_certificate(k.id), der);
    // Replacing keeps one certificate.
    auto cert2 = test::issue_cert(ca, pub.get(), "host-17b", test::CertUsage::client);
    token->store_certificate(k.id, test::to_der(cert2.get()), "cert-key");
    EXPECT_EQ(token->find_certificate(k.id), test::to_der(cert2.get()));
    EXPECT_EQ(token->destroy_key(k.id), 3u);
    EXPECT_FALSE(token->find_certificate(k.id));
}

TEST(TokenErrors, MissingModule) {
    auto o = test::token_options();
    o.module_path = "/nonexistent/libnope.so";
    const std::string e = open_error(o);
    EXPECT_NE(e.find("cannot load PKCS#11 module /nonexistent/libnope.so"), std::string::npos) << e;
    EXPECT_NE(e.find("check pkcs11.module"), std::string::npos) << e;
}

TEST(TokenErrors, TokenNotFound) {
    auto o = test::token_options();
    o.token_uri = "pkcs11:token=no-such-token";
    const std::string e = open_error(o);
    EXPECT_NE(e.find("token not found: no token in module"), std::string::npos) << e;
    EXPECT_NE(e.find("pkcs11:token=no-such-token"), std::string::npos) << e;
    // It lists what is there, to help the operator.
    EXPECT_NE(e.find("\"" + test::shared_softhsm_token().label + "\""), std::string::npos) << e;
}

TEST(TokenErrors, WrongPin) {
    const auto& t = test::shared_softhsm_token();
    const std::string wrong = (t.dir / "wrong-pin").string();
    std::ofstream(wrong) << "not-the-pin-4711\n";
    auto o = test::token_options();
    o.pin = pkcs11::PinSource::file(wrong);
    const std::string e = open_error(o);
    EXPECT_NE(e.find("C_Login on token \"" + t.label + "\""), std::string::npos) << e;
    EXPECT_NE(e.find("CKR_PIN_INCORRECT"), std::string::npos) << e;
    EXPECT_NE(e.find("check the PIN in pin_file " + wrong), std::string::npos) << e;
    EXPECT_EQ(e.find("not-the-pin-4711"), std::string::npos) << e;
    // The right PIN still works afterwards.
    EXPECT_NO_THROW(test::open_test_token());
}

TEST(TokenErrors, MissingPinFile) {
    auto o = test::token_options();
    o.pin = pkcs11::PinSource::file("/nonexistent/pin");
    const std::string e = open_error(o);
    EXPECT_NE(e.find("cannot read the token PIN from pin_file /nonexistent/pin"), std::string::npos)
        << e;
}

TEST(TokenErrors, PinInUriRefused) {
    auto o = test::token_options();
    o.token_uri += ";pin-value=1234";
    const std::string e = open_error(o);
    EXPECT_NE(e.find("pin-value is refused"), std::string::npos) << e;
}

// The token's sessions are all closed under us (as a token reset or another component of the
// process calling C_CloseAllSessions would do; that also logs the application out). The next
// operations re-open sessions and log in again.
TEST(TokenRecovery, RecoversAfterAllSessionsClosed) {
    auto token = test::open_test_token();
    const auto k = token->generate_key(KeyType::ec_p256, "recover");
    pkcs11::PrivateKeyRef ref(k.id);
    CK_MECHANISM mech{CKM_ECDSA, nullptr, 0};
    const unsigned char digest[32] = {1, 2, 3};
    EXPECT_EQ(token->sign(ref, mech, digest, 64).size(), 64u);

    for (int round = 0; round < 3; ++round) {
        ASSERT_EQ(token->fn()->C_CloseAllSessions(token->slot()), CKR_OK);
        const auto before = token->recoveries();
        EXPECT_EQ(token->sign(ref, mech, digest, 64).size(), 64u);
        EXPECT_EQ(token->recoveries(), before + 1);
        EXPECT_TRUE(token->find_key(k.id));
    }
    token->destroy_key(k.id);
}

// Two threads sign; between rounds, while both are parked, all sessions are closed under
// them. Then both find stale sessions at the same moment and recover concurrently (one
// starts over, the other sees the new epoch). Every signature must succeed.
// (The closing happens while no call is in flight: SoftHSM 2.6 itself crashes in C_Sign when
// C_CloseAllSessions frees a session another thread is signing with — a module bug no caller
// can guard against when the close comes from outside.)
TEST(TokenRecovery, ConcurrentSignersRecoverTogether) {
    auto token = test::open_test_token();
    const auto k = token->generate_key(KeyType::ec_p256, "recover-mt");
    pkcs11::PrivateKeyRef ref(k.id);
    constexpr int kRounds = 5, kPerRound = 40;
    std::barrier sync(3);
    std::atomic<int> ok{0};
    std::mutex mu;
    std::string first_error;
    auto worker = [&] {
        CK_MECHANISM mech{CKM_ECDSA, nullptr, 0};
        const unsigned char digest[32] = {5};
        for (int r = 0; r < kRounds; ++r) {
            for (int i = 0; i < kPerRound; ++i) {
                try {
                    if (token->sign(ref, mech, digest, 64).size() == 64) ++ok;
                } catch (const pkcs11::Error& e) {
                    std::lock_guard lk(mu);
                    if (first_error.empty()) first_error = e.what();
                }
            }
            sync.arrive_and_wait();  // parked
            sync.arrive_and_wait();  // sessions closed
        }
    };
    std::thread a(worker), b(worker);
    for (int r = 0; r < kRounds; ++r) {
        sync.arrive_and_wait();
        EXPECT_EQ(token->fn()->C_CloseAllSessions(token->slot()), CKR_OK);
        sync.arrive_and_wait();
    }
    a.join();
    b.join();
    EXPECT_EQ(ok.load(), 2 * kRounds * kPerRound) << first_error;
    // One recovery per close (the second thread to notice joins the first one's), allowing
    // for the rare case where the second thread's stale session fails after the first
    // thread already finished recovering.
    EXPECT_GE(token->recoveries(), static_cast<std::uint64_t>(kRounds - 1));
    EXPECT_LE(token->recoveries(), static_cast<std::uint64_t>(2 * kRounds));
    token->destroy_key(k.id);
}

// The module itself is reset (C_Finalize by someone else in the process): the next operation
// initialises it again, finds the slot, opens a session, logs in, finds the key again.
TEST(TokenRecovery, RecoversAfterModuleFinalize) {
    auto token = test::open_test_token();
    const auto k = token->generate_key(KeyType::ec_p256, "reinit");
    pkcs11::PrivateKeyRef ref(k.id);
    CK_MECHANISM mech{CKM_ECDSA, nullptr, 0};
    const unsigned char digest[32] = {7};
    EXPECT_EQ(token->sign(ref, mech, digest, 64).size(), 64u);
    ASSERT_EQ(token->fn()->C_Finalize(nullptr), CKR_OK);
    EXPECT_EQ(token->sign(ref, mech, digest, 64).size(), 64u);
    EXPECT_GE(token->recoveries(), 1u);
    EXPECT_TRUE(token->find_key(k.id));
    token->destroy_key(k.id);
}

TEST(TokenRecovery, RecoversAfterLogout) {
    auto token = test::open_test_token();
    const auto k = token->generate_key(KeyType::ec_p256, "relogin");
    {
        RawSession s(*token);
        ASSERT_EQ(token->fn()->C_Logout(s.h), CKR_OK);
    }
    pkcs11::PrivateKeyRef ref(k.id);
    CK_MECHANISM mech{CKM_ECDSA, nullptr, 0};
    const unsigned char digest[32] = {9};
    EXPECT_EQ(token->sign(ref, mech, digest, 64).size(), 64u);
    EXPECT_GE(token->recoveries(), 1u);
    token->destroy_key(k.id);
}

TEST(TokenRecovery, ProviderKeyRecoversAndDestroyedKeyFailsClearly) {
    auto token = test::open_test_token();
    const auto k = token->generate_key(KeyType::ec_p256, "prov-recover");
    pkcs11::ProviderContext prov(token);
    auto key = prov.load_private_key(k.id);
    auto sign = [&]() -> std::string {
        ossl::MdCtx md(EVP_MD_CTX_new());
        unsigned char sig[256];
        size_t len = sizeof sig;
        const unsigned char msg[] = "hello";
        if (EVP_DigestSignInit_ex(md.get(), nullptr, "SHA256", nullptr, nullptr, key.get(),
                                  nullptr) != 1 ||
            EVP_DigestSign(md.get(), sig, &len, msg, sizeof msg) != 1)
            return ossl::drain_errors();
        return "ok";
    };
    EXPECT_EQ(sign(), "ok");
    ASSERT_EQ(token->fn()->C_CloseAllSessions(token->slot()), CKR_OK);
    EXPECT_EQ(sign(), "ok");
    token->destroy_key(k.id);
    const std::string e = sign();
    EXPECT_NE(e.find("key not found: no private key with id " + encoding::hex(k.id)),
              std::string::npos)
        << e;
    EXPECT_NE(e.find("on token \"" + token->label() + "\""), std::string::npos) << e;
}

}  // namespace
