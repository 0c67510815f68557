// The EST response parsers and local checks, fed bytes directly: PKCS#7 certs-only,
// CsrAttrs, the CSR builder, issued-certificate verification, Retry-After.
#include <gtest/gtest.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <chrono>
#include <stop_token>
#include <thread>

#include "common/encoding.hpp"
#include "est/client.hpp"
#include "est/csr.hpp"
#include "est/csr_extras.hpp"
#include "est/csrattrs.hpp"
#include "est/key_choice.hpp"
#include "est/pkcs7.hpp"
#include "est/verify.hpp"
#include "tests/est/test_pki.hpp"

namespace mtls::est {
namespace {

using namespace std::chrono_literals;
using testing::der;
using testing::ec_key;
using testing::pkcs7_der;

std::string wrap(const std::string& b64, std::size_t cols, const char* eol) {
    std::string out;
    for (std::size_t i = 0; i < b64.size(); i += cols) out += b64.substr(i, cols) + eol;
    return out;
}

template <class F>
Error::Kind error_kind(F&& f, std::string* message = nullptr) {
    try {
        f();
    } catch (const Error& e) {
        if (message) *message = e.what();
        return e.kind();
    }
    ADD_FAILURE() << "no est::Error thrown";
    return Error::Kind::config;
}

class Pkcs7Test : public ::testing::Test {
  protected:
    testing::Ca root = testing::make_ca("Test Root");
    testing::Ca issuing = testing::make_ca("Test Issuing", &root);
    std::string certs_der = pkcs7_der({issuing.cert.get(), root.cert.get()});
};

TEST_F(Pkcs7Test, AcceptsBase64WithAndWithoutLineBreaks) {
    const std::string b64 = encoding::base64(certs_der);
    for (const std::string& body :
         {b64, wrap(b64, 64, "\n"), wrap(b64, 76, "\r\n"), "  \n" + wrap(b64, 60, "\n") + "\n\n"}) {
        auto certs = parse_certs_only(body, "application/pkcs7-mime; smime-type=certs-only");
        ASSERT_EQ(certs.size(), 2u);
        EXPECT_EQ(X509_cmp(certs[0].get(), issuing.cert.get()), 0);
        EXPECT_EQ(X509_cmp(certs[1].get(), root.cert.get()), 0);
    }
}

TEST_F(Pkcs7Test, AcceptsContentTypeVariantsAndRawDer) {
    const std::string b64 = encoding::base64(certs_der);
    EXPECT_EQ(parse_certs_only(b64, "Application/PKCS7-MIME").size(), 2u);
    EXPECT_EQ(parse_certs_only(b64, "application/pkcs7-mime;smime-type=certs-only").size(), 2u);
    EXPECT_EQ(parse_certs_only(b64).size(), 2u);
    EXPECT_EQ(parse_certs_only(certs_der, "application/pkcs7-mime").size(), 2u);
}

TEST_F(Pkcs7Test, RejectsWrongContentType) {
    std::string msg;
    EXPECT_EQ(error_kind([&] { parse_certs_only(encoding::base64(certs_der), "text/html"); }, &msg),
              Error::Kind::bad_response);
    EXPECT_NE(msg.find("text/html"), std::string::npos) << msg;
}

TEST_F(Pkcs7Test, RejectsGarbageTruncatedEmptyAndTrailing) {
    std::string msg;
    EXPECT_EQ(error_kind([&] { parse_certs_only("<html>oops</html>"); }, &msg),
              Error::Kind::bad_response);
    EXPECT_NE(msg.find("neither base64 nor DER"), std::string::npos) << msg;

    const std::string truncated = encoding::base64(certs_der.substr(0, certs_der.size() / 2));
    EXPECT_EQ(error_kind([&] { parse_certs_only(truncated); }, &msg), Error::Kind::bad_response);
    EXPECT_NE(msg.find("truncated"), std::string::npos) << msg;

    EXPECT_EQ(error_kind([&] { parse_certs_only(" \r\n"); }, &msg), Error::Kind::bad_response);
    EXPECT_NE(msg.find("empty"), std::string::npos) << msg;

    const std::string trailing = encoding::base64(certs_der + "xyz");
    EXPECT_EQ(error_kind([&] { parse_certs_only(trailing); }, &msg), Error::Kind::bad_response);
    EXPECT_NE(msg.find("trailing"), std::string::npos) << msg;
}

TEST_F(Pkcs7Test, RejectsNoCertificatesAndContent) {
    std::string msg;
    EXPECT_EQ(error_kind([&] { parse_certs_only(encoding::base64(pkcs7_der({}))); }, &msg),
              Error::Kind::bad_response);
    EXPECT_NE(msg.find("no certificates"), std::string::npos) << msg;

    const std::string with_content = pkcs7_der({root.cert.get()}, "hello");
    EXPECT_EQ(error_kind([&] { parse_certs_only(encoding::base64(with_content)); }, &msg),
              Error::Kind::bad_response);
    EXPECT_NE(msg.find("content"), std::string::npos) << msg;
}

TEST_F(Pkcs7Test, RejectsACertificateInsteadOfPkcs7) {
    std::string msg;
    EXPECT_EQ(error_kind([&] { parse_certs_only(encoding::base64(der(root.cert.get()))); }, &msg),
              Error::Kind::bad_response);
}

// ---- csrattrs ---------------------------------------------------------------------------

TEST(CsrAttrsTest, ParsesTheRfc7030Example) {
    // RFC 7030 §4.5.2: challengePassword, id-ecPublicKey{secp384r1}, extensionRequest{macAddress},
    // ecdsa-with-SHA384.
    const std::string body =
        "MEEGCSqGSIb3DQEJBzASBgcqhkjOPQIBMQcGBSuBBAAiMBYGCSqGSIb3DQEJDjEJ\r\n"
        "BgcrBgEBAQEWBggqhkjOPQQDAw==\r\n";
    auto a = parse_csrattrs(body);
    EXPECT_TRUE(a.challenge_password);
    ASSERT_EQ(a.keys.size(), 1u);
    EXPECT_EQ(a.keys[0].type, KeyRequest::Type::ec);
    EXPECT_EQ(a.keys[0].curve_nid, NID_secp384r1);
    EXPECT_EQ(a.digest, "SHA384");
    // macAddress listed in the extensionRequest: asked for as an extension.
    EXPECT_TRUE(a.unhandled.empty()) << a.describe();
    ASSERT_EQ(a.requested.size(), 1u) << a.describe();
    EXPECT_EQ(a.requested[0].oid, "1.3.6.1.1.1.1.22");
    EXPECT_TRUE(a.requested[0].extension);
    EXPECT_EQ(a.requested[0].describe(), "CSR extension macAddress (1.3.6.1.1.1.1.22)");

    auto p256 = ec_key("P-256");
    auto p384 = ec_key("P-384");
    EXPECT_FALSE(key_mismatch(a, p256.get()).empty());
    EXPECT_TRUE(key_mismatch(a, p384.get()).empty());
}

std::string seq_any_der(std::vector<ASN1_TYPE*> items) {
    STACK_OF(ASN1_TYPE)* sk = sk_ASN1_TYPE_new_null();
    for (auto* t : items) sk_ASN1_TYPE_push(sk, t);
    unsigned char* out = nullptr;
    int n = i2d_ASN1_SEQUENCE_ANY(sk, &out);
    sk_ASN1_TYPE_pop_free(sk, ASN1_TYPE_free);
    std::string s(reinterpret_cast<char*>(out), static_cast<size_t>(n));
    OPENSSL_free(out);
    return s;
}

ASN1_TYPE* as_sequence(X509_ATTRIBUTE* attr) {
    unsigned char* der_out = nullptr;
    int n = i2d_X509_ATTRIBUTE(attr, &der_out);
    ASN1_STRING* s = ASN1_STRING_type_new(V_ASN1_SEQUENCE);
    ASN1_STRING_set(s, der_out, n);
    OPENSSL_free(der_out);
    X509_ATTRIBUTE_free(attr);
    ASN1_TYPE* t = ASN1_TYPE_new();
    ASN1_TYPE_set(t, V_ASN1_SEQUENCE, s);
    return t;
}

TEST(CsrAttrsTest, ParsesExtensionRequestWithSanAndRsaSize) {
    // extensionRequest { subjectAltName: DNS + IP }, rsaEncryption { INTEGER 3072 }, sha256WithRSA.
    GENERAL_NAMES* gens = GENERAL_NAMES_new();
    sk_GENERAL_NAME_push(gens,
                         a2i_GENERAL_NAME(nullptr, nullptr, nullptr, GEN_DNS, "x.example", 0));
    sk_GENERAL_NAME_push(gens,
                         a2i_GENERAL_NAME(nullptr, nullptr, nullptr, GEN_IPADD, "10.0.0.1", 0));
    STACK_OF(X509_EXTENSION)* exts = sk_X509_EXTENSION_new_null();
    X509V3_add1_i2d(&exts, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT);
    GENERAL_NAMES_free(gens);
    unsigned char* ext_der = nullptr;
    int n = i2d_X509_EXTENSIONS(exts, &ext_der);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    X509_ATTRIBUTE* ext_req =
        X509_ATTRIBUTE_create_by_NID(nullptr, NID_ext_req, V_ASN1_SEQUENCE, ext_der, n);
    OPENSSL_free(ext_der);
    ASSERT_NE(ext_req, nullptr);

    ASN1_INTEGER* bits = ASN1_INTEGER_new();
    ASN1_INTEGER_set(bits, 3072);
    X509_ATTRIBUTE* rsa = X509_ATTRIBUTE_create(NID_rsaEncryption, V_ASN1_INTEGER, bits);
    ASSERT_NE(rsa, nullptr);
    ASN1_TYPE* sig = ASN1_TYPE_new();
    ASN1_TYPE_set(sig, V_ASN1_OBJECT, OBJ_nid2obj(NID_sha256WithRSAEncryption));

    auto d = seq_any_der({as_sequence(ext_req), as_sequence(rsa), sig});
    auto a = parse_csrattrs(encoding::base64(d));
    EXPECT_FALSE(a.challenge_password);
    ASSERT_EQ(a.keys.size(), 1u);
    EXPECT_EQ(a.keys[0].type, KeyRequest::Type::rsa);
    EXPECT_EQ(a.keys[0].rsa_bits, 3072);
    EXPECT_EQ(a.digest, "SHA256");
    EXPECT_EQ(a.extensions, std::vector<std::string>{"subjectAltName"});
    EXPECT_EQ(a.san_types, (std::vector<std::string>{"DNS", "IP"}));
    EXPECT_TRUE(a.unhandled.empty()) << a.describe();
    // Raw DER bodies are accepted too.
    EXPECT_EQ(parse_csrattrs(d).keys.size(), 1u);

    auto ec = ec_key();
    EXPECT_NE(key_mismatch(a, ec.get()).find("RSA 3072"), std::string::npos);
}

TEST(CsrAttrsTest, EmptyAndGarbage) {
    EXPECT_TRUE(parse_csrattrs("").empty());
    EXPECT_TRUE(parse_csrattrs("\r\n").empty());
    EXPECT_TRUE(parse_csrattrs(encoding::base64(std::string("\x30\x00", 2))).empty());
    EXPECT_EQ(error_kind([] { parse_csrattrs("not base64 !"); }), Error::Kind::bad_response);
    EXPECT_EQ(error_kind([] { parse_csrattrs(encoding::base64("\x30\x05\x06\x03")); }),
              Error::Kind::bad_response);
    // An INTEGER where an OID or an Attribute must be.
    EXPECT_EQ(error_kind(
                  [] { parse_csrattrs(encoding::base64(std::string("\x30\x03\x02\x01\x05", 5))); }),
              Error::Kind::bad_response);
    // A SEQUENCE that is not an Attribute.
    EXPECT_EQ(error_kind([] {
                  parse_csrattrs(encoding::base64(std::string("\x30\x05\x30\x03\x02\x01\x05", 7)));
              }),
              Error::Kind::bad_response);
}

// Like libest's example csrattrs (example/server/runserver.sh): macAddress as a bare OID, two
// private attribute types (one bare, one an Attribute with a value), and a bare id-sha384.
std::string libest_like_der() {
    auto oid = [](const char* text) {
        ASN1_TYPE* t = ASN1_TYPE_new();
        ASN1_TYPE_set(t, V_ASN1_OBJECT, OBJ_txt2obj(text, 1));
        return t;
    };
    X509_ATTRIBUTE* with_value = X509_ATTRIBUTE_create_by_txt(
        nullptr, "2.999.2", V_ASN1_PRINTABLESTRING,
        reinterpret_cast<const unsigned char*>("Parse SET as 2.999.2 data"), 25);
    return seq_any_der({oid("1.3.6.1.1.1.1.22"), oid("2.999.1"), as_sequence(with_value),
                        oid("2.16.840.1.101.3.4.2.2")});
}

TEST(CsrAttrsTest, BareHashOidAndAttributeOids) {
    auto a = parse_csrattrs(encoding::base64(libest_like_der()));
    EXPECT_EQ(a.digest, "SHA384") << a.describe();
    ASSERT_FALSE(a.requested.empty()) << a.describe();
    EXPECT_EQ(a.requested[0].oid, "1.3.6.1.1.1.1.22");
    EXPECT_FALSE(a.requested[0].extension);
    EXPECT_EQ(a.requested[0].describe(), "CSR attribute macAddress (1.3.6.1.1.1.1.22)");
    for (const char* oid : {"2.999.1", "2.999.2"})
        EXPECT_TRUE(std::any_of(a.requested.begin(), a.requested.end(),
                                [&](const RequestedItem& r) { return r.oid == oid; }))
            << oid << " not in " << a.describe();
    // id-sha256 and id-sha512 too.
    for (auto [nid, digest] : {std::pair{NID_sha256, "SHA256"}, std::pair{NID_sha512, "SHA512"}}) {
        ASN1_TYPE* t = ASN1_TYPE_new();
        ASN1_TYPE_set(t, V_ASN1_OBJECT, OBJ_nid2obj(nid));
        EXPECT_EQ(parse_csrattrs(seq_any_der({t})).digest, digest);
    }
}

TEST(CsrAttrsTest, ToleratesTrailingNulAndWhitespace) {
    // RFC 7030 §4.5.2's example with a C string's terminator, CRLF and spaces after it.
    const std::string b64 =
        "MEEGCSqGSIb3DQEJBzASBgcqhkjOPQIBMQcGBSuBBAAiMBYGCSqGSIb3DQEJDjEJ"
        "BgcrBgEBAQEWBggqhkjOPQQDAw==";
    for (const std::string& body :
         {b64 + std::string("\0", 1), b64 + "\r\n" + std::string("\0\0", 2),
          wrap(b64, 64, "\n") + std::string("\0", 1) + " \n",
          std::string(b64, 0, b64.size() - 2) + std::string("\0", 1)}) {  // no padding
        auto a = parse_csrattrs(body);
        EXPECT_EQ(a.digest, "SHA384");
        ASSERT_EQ(a.keys.size(), 1u);
        EXPECT_EQ(a.keys[0].curve_nid, NID_secp384r1);
    }
    // Raw DER followed by a NUL: its length says where it ends.
    auto der = *encoding::base64_decode(b64);
    EXPECT_EQ(parse_csrattrs(der + std::string("\0", 1)).digest, "SHA384");
    EXPECT_EQ(parse_csrattrs(der + std::string("\0\r\n", 3)).digest, "SHA384");
    // Other trailing bytes are still an error, and only NULs is still "nothing asked".
    EXPECT_EQ(error_kind([&] { parse_csrattrs(der + "x"); }), Error::Kind::bad_response);
    EXPECT_TRUE(parse_csrattrs(std::string("\0", 1)).empty());
}

config::CsrAttribute mac_config() {
    return {"macAddress", "1.3.6.1.1.1.1.22", "00:16:3e:12:34:56"};
}

TEST(CsrAttrsTest, PlansConfiguredAttributesAndNamesWhatIsMissing) {
    auto a = parse_csrattrs(encoding::base64(libest_like_der()));
    auto plan = plan_csr_extras(a, {mac_config()});
    ASSERT_EQ(plan.items.size(), 1u);
    EXPECT_FALSE(plan.items[0].extension);
    EXPECT_EQ(plan.unmet.size(), 2u);  // 2.999.1 and 2.999.2
    EXPECT_NE(plan.unmet[0].find("est.csr_attributes.\"2.999.1\""), std::string::npos)
        << plan.unmet[0];

    auto none = plan_csr_extras(a, {});
    EXPECT_TRUE(none.items.empty());
    ASSERT_EQ(none.unmet.size(), 3u);
    EXPECT_EQ(none.unmet[0],
              "the EST server asked for CSR attribute macAddress (1.3.6.1.1.1.1.22), which the "
              "config does not supply: set est.csr_attributes.macAddress");
}

TEST(CsrAttrsTest, ConfiguredItemsGoIntoTheCsr) {
    // macAddress as an attribute (IA5String), a private OID the server asked for in an
    // extensionRequest as an extension holding a UTF8String, keyUsage in OpenSSL's syntax.
    CsrAttributes asked;
    asked.requested.push_back({"1.3.6.1.4.1.99999.7", true});
    auto plan =
        plan_csr_extras(asked, {mac_config(),
                                {"1.3.6.1.4.1.99999.7", "1.3.6.1.4.1.99999.7", "device-42"},
                                {"keyUsage", "2.5.29.15", "critical,digitalSignature"},
                                {"1.3.6.1.4.1.99999.8", "1.3.6.1.4.1.99999.8", "DER:0c0161"}});
    EXPECT_TRUE(plan.unmet.empty());
    CsrRequest r;
    r.common_name = "host-17.example";
    r.extra = plan.items;
    auto key = ec_key();
    auto req = build_csr(r, key.get());

    int i = X509_REQ_get_attr_by_OBJ(
        req.get(), ossl::Asn1Object(OBJ_txt2obj("1.3.6.1.1.1.1.22", 1)).get(), -1);
    ASSERT_GE(i, 0);
    ASN1_TYPE* v = X509_ATTRIBUTE_get0_type(X509_REQ_get_attr(req.get(), i), 0);
    ASSERT_EQ(v->type, V_ASN1_IA5STRING);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(v->value.ia5string)),
                          static_cast<std::size_t>(ASN1_STRING_length(v->value.ia5string))),
              "00:16:3e:12:34:56");
    i = X509_REQ_get_attr_by_OBJ(req.get(),
                                 ossl::Asn1Object(OBJ_txt2obj("1.3.6.1.4.1.99999.8", 1)).get(), -1);
    ASSERT_GE(i, 0);
    EXPECT_EQ(X509_ATTRIBUTE_get0_type(X509_REQ_get_attr(req.get(), i), 0)->type,
              V_ASN1_UTF8STRING);

    ossl::X509ExtStack exts(X509_REQ_get_extensions(req.get()));
    ASSERT_TRUE(exts);
    const int ku = X509v3_get_ext_by_NID(exts.get(), NID_key_usage, -1);
    ASSERT_GE(ku, 0);
    EXPECT_EQ(X509_EXTENSION_get_critical(sk_X509_EXTENSION_value(exts.get(), ku)), 1);
    const int priv = X509v3_get_ext_by_OBJ(
        exts.get(), ossl::Asn1Object(OBJ_txt2obj("1.3.6.1.4.1.99999.7", 1)).get(), -1);
    ASSERT_GE(priv, 0);
    const ASN1_OCTET_STRING* data =
        X509_EXTENSION_get_data(sk_X509_EXTENSION_value(exts.get(), priv));
    const std::string expected(
        "\x0c\x09"
        "device-42",
        11);  // UTF8String "device-42"
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(data)),
                          static_cast<std::size_t>(ASN1_STRING_length(data))),
              expected);

    // A value OpenSSL cannot read as keyUsage names the config key.
    CsrRequest bad = r;
    bad.extra = {{"2.5.29.15", "no-such-usage", true, "keyUsage"}};
    std::string msg;
    EXPECT_EQ(error_kind([&] { build_csr(bad, key.get()); }, &msg), Error::Kind::config);
    EXPECT_NE(msg.find("est.csr_attributes.keyUsage"), std::string::npos) << msg;
}

TEST(KeyChoiceTest, FollowsTheServerWithinKeyPolicy) {
    using config::KeyType;
    auto p384 = parse_csrattrs(
        "MEEGCSqGSIb3DQEJBzASBgcqhkjOPQIBMQcGBSuBBAAiMBYGCSqGSIb3DQEJDjEJ"
        "BgcrBgEBAQEWBggqhkjOPQQDAw==");
    config::KeyPolicy fixed;  // ec-p256
    config::KeyPolicy follow;
    follow.from_server = true;
    config::KeyPolicy listed;
    listed.types = {KeyType::rsa_2048, KeyType::ec_p384};
    listed.type = KeyType::rsa_2048;

    EXPECT_EQ(choose_key_type({}, follow), KeyType::ec_p256);  // nothing asked: the default
    EXPECT_EQ(choose_key_type({}, listed), KeyType::rsa_2048);
    EXPECT_EQ(choose_key_type(p384, follow), KeyType::ec_p384);
    EXPECT_EQ(choose_key_type(p384, listed), KeyType::ec_p384);
    std::string msg;
    EXPECT_EQ(error_kind([&] { choose_key_type(p384, fixed); }, &msg), Error::Kind::config);
    EXPECT_EQ(msg,
              "the EST server's CSR attributes ask for a key of type EC secp384r1, but key.type is "
              "\"ec-p256\": set [key] type = \"ec-p384\", or type = \"from-server\" to follow "
              "the server");
    config::KeyPolicy rsa_only;
    rsa_only.types = {KeyType::rsa_2048, KeyType::rsa_3072};
    EXPECT_EQ(error_kind([&] { choose_key_type(p384, rsa_only); }, &msg), Error::Kind::config);
    EXPECT_NE(msg.find("key.types allows only \"rsa-2048\", \"rsa-3072\""), std::string::npos)
        << msg;

    CsrAttributes rsa_any;
    rsa_any.keys.push_back({KeyRequest::Type::rsa, 0, 0});
    EXPECT_EQ(choose_key_type(rsa_any, follow), KeyType::rsa_2048);
    CsrAttributes rsa4096;
    rsa4096.keys.push_back({KeyRequest::Type::rsa, 0, 4096});
    EXPECT_EQ(error_kind([&] { choose_key_type(rsa4096, follow); }, &msg), Error::Kind::config);
    EXPECT_NE(msg.find("RSA 4096"), std::string::npos) << msg;
    EXPECT_TRUE(key_type_satisfies(p384, KeyType::ec_p384));
    EXPECT_FALSE(key_type_satisfies(p384, KeyType::ec_p256));
}

// ---- CSR --------------------------------------------------------------------------------

std::string challenge_of(X509_REQ* req) {
    int i = X509_REQ_get_attr_by_NID(req, NID_pkcs9_challengePassword, -1);
    if (i < 0) return {};
    ASN1_TYPE* t = X509_ATTRIBUTE_get0_type(X509_REQ_get_attr(req, i), 0);
    return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(t->value.asn1_string)),
                       static_cast<size_t>(ASN1_STRING_length(t->value.asn1_string)));
}

TEST(CsrTest, BuildsAndSignsWithEcRsaEd25519) {
    CsrRequest r;
    r.common_name = "host-17.example";
    r.organization = "Example Corp";
    r.organizational_units = {"payments"};
    r.dns_names = {"host-17.example", "alt.example"};
    r.ip_addresses = {"192.0.2.7"};
    r.challenge_password = encoding::base64(std::string(12, '\x01'));
    std::vector<ossl::PKey> keys;
    keys.push_back(ec_key("P-384"));
    keys.push_back(testing::rsa_key(2048));
    keys.push_back(testing::ed25519_key());
    for (auto& key : keys) {
        auto req = build_csr(r, key.get());
        EXPECT_EQ(X509_REQ_verify(req.get(), key.get()), 1);
        EXPECT_EQ(EVP_PKEY_eq(X509_REQ_get0_pubkey(req.get()), key.get()), 1);
        char cn[128] = {};
        X509_NAME_get_text_by_NID(X509_REQ_get_subject_name(req.get()), NID_commonName, cn,
                                  sizeof cn);
        EXPECT_STREQ(cn, "host-17.example");
        EXPECT_EQ(challenge_of(req.get()), r.challenge_password);
        STACK_OF(X509_EXTENSION)* exts = X509_REQ_get_extensions(req.get());
        auto* names = static_cast<GENERAL_NAMES*>(
            X509V3_get_d2i(exts, NID_subject_alt_name, nullptr, nullptr));
        ASSERT_NE(names, nullptr);
        EXPECT_EQ(sk_GENERAL_NAME_num(names), 3);
        GENERAL_NAMES_free(names);
        sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
        // Round trip through DER.
        auto d = csr_der(req.get());
        const auto* p = reinterpret_cast<const unsigned char*>(d.data());
        ossl::X509ReqPtr back(d2i_X509_REQ(nullptr, &p, static_cast<long>(d.size())));
        ASSERT_TRUE(back);
        EXPECT_EQ(X509_REQ_verify(back.get(), key.get()), 1);
    }
}

// Partners register full DNs for tls_client_auth (RFC 8705 §2.1.2): every attribute in the
// DER order C, ST, L, O, OU…, CN, serialNumber, and SANs of the four kinds.
TEST(CsrTest, FullSubjectAndEveryKindOfSan) {
    CsrRequest r;
    r.country = "US";
    r.state = "California";
    r.locality = "San Francisco";
    r.organization = "Example Corp";
    r.organizational_units = {"payments", "eu-west"};
    r.common_name = "host-17.example";
    r.serial_number = "A-1234";
    r.dns_names = {"host-17.example"};
    r.ip_addresses = {"192.0.2.7", "2001:db8::7"};
    r.uris = {"spiffe://example.org/host-17"};
    r.emails = {"ops@example.org"};
    auto key = ec_key();
    auto req = build_csr(r, key.get());
    ossl::Bio bio(BIO_new(BIO_s_mem()));
    X509_NAME_print_ex(bio.get(), X509_REQ_get_subject_name(req.get()), 0, XN_FLAG_RFC2253);
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio.get(), &data);
    EXPECT_EQ(std::string(data, static_cast<size_t>(n)),
              "serialNumber=A-1234,CN=host-17.example,OU=eu-west,OU=payments,O=Example Corp,"
              "L=San Francisco,ST=California,C=US");
    // countryName and serialNumber are PrintableStrings (RFC 5280 Appendix A).
    X509_NAME* name = X509_REQ_get_subject_name(req.get());
    for (int nid : {NID_countryName, NID_serialNumber}) {
        int i = X509_NAME_get_index_by_NID(name, nid, -1);
        ASSERT_GE(i, 0);
        EXPECT_EQ(ASN1_STRING_type(X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i))),
                  V_ASN1_PRINTABLESTRING);
    }
    STACK_OF(X509_EXTENSION)* exts = X509_REQ_get_extensions(req.get());
    auto* names =
        static_cast<GENERAL_NAMES*>(X509V3_get_d2i(exts, NID_subject_alt_name, nullptr, nullptr));
    ASSERT_NE(names, nullptr);
    std::vector<int> types;
    for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i)
        types.push_back(sk_GENERAL_NAME_value(names, i)->type);
    EXPECT_EQ(types, (std::vector<int>{GEN_DNS, GEN_IPADD, GEN_IPADD, GEN_URI, GEN_EMAIL}));
    GENERAL_NAMES_free(names);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
}

TEST(CsrTest, CopiesNamesFromTheCurrentCertificate) {
    auto ca = testing::make_ca("CA");
    auto old_key = ec_key();
    auto cur = testing::issue(ca, old_key.get(), "host-9.example");
    auto new_key = ec_key();
    CsrRequest r;
    r.copy_names_from = cur.get();
    r.common_name = "ignored";
    auto req = build_csr(r, new_key.get());
    EXPECT_EQ(X509_NAME_cmp(X509_REQ_get_subject_name(req.get()), X509_get_subject_name(cur.get())),
              0);
    EXPECT_EQ(X509_REQ_verify(req.get(), new_key.get()), 1);
}

TEST(CsrTest, ClearErrors) {
    auto key = ec_key();
    CsrRequest r;
    std::string msg;
    EXPECT_EQ(error_kind([&] { build_csr(r, key.get()); }, &msg), Error::Kind::config);
    EXPECT_NE(msg.find("est.common_name"), std::string::npos);
    r.common_name = "x";
    r.ip_addresses = {"not-an-ip"};
    EXPECT_EQ(error_kind([&] { build_csr(r, key.get()); }, &msg), Error::Kind::config);
    EXPECT_NE(msg.find("not-an-ip"), std::string::npos);
}

// ---- verification of what was issued -----------------------------------------------------

class VerifyTest : public ::testing::Test {
  protected:
    testing::Ca root = testing::make_ca("Root");
    testing::Ca issuing = testing::make_ca("Issuing", &root);
    ossl::PKey key = ec_key();
    std::vector<X509*> anchors{issuing.cert.get(), root.cert.get()};

    std::vector<ossl::X509Ptr> returned(ossl::X509Ptr leaf) {
        std::vector<ossl::X509Ptr> v;
        v.push_back(std::move(leaf));
        return v;
    }
};

TEST_F(VerifyTest, AcceptsTheLeafForOurKey) {
    auto issued =
        verify_issued(returned(testing::issue(issuing, key.get(), "me")), key.get(), anchors);
    ASSERT_TRUE(issued.cert);
    EXPECT_EQ(EVP_PKEY_eq(X509_get0_pubkey(issued.cert.get()), key.get()), 1);
    // The issuing CA is a stored CA certificate but no root: it is part of the chain a
    // partner that trusts only the root needs (it was dropped once: "chain=0").
    ASSERT_EQ(issued.chain.size(), 1u);
    EXPECT_EQ(X509_cmp(issued.chain[0].get(), issuing.cert.get()), 0);

    // With only the root stored, the returned intermediate becomes the chain.
    std::vector<ossl::X509Ptr> v = returned(testing::issue(issuing, key.get(), "me"));
    X509_up_ref(issuing.cert.get());
    v.emplace_back(issuing.cert.get());
    auto issued2 = verify_issued(std::move(v), key.get(), {root.cert.get()});
    ASSERT_EQ(issued2.chain.size(), 1u);
    EXPECT_EQ(X509_cmp(issued2.chain[0].get(), issuing.cert.get()), 0);

    // Only the issuing CA stored (no root): the chain still carries it.
    auto issued3 = verify_issued(returned(testing::issue(issuing, key.get(), "me")), key.get(),
                                 {issuing.cert.get()});
    ASSERT_EQ(issued3.chain.size(), 1u);
    EXPECT_EQ(X509_cmp(issued3.chain[0].get(), issuing.cert.get()), 0);
}

TEST_F(VerifyTest, ChainOfTwoIntermediatesFromCacerts) {
    testing::Ca policy = testing::make_ca("Policy", &root);
    testing::Ca sub = testing::make_ca("Sub", &policy);
    // The enrollment returns the leaf only; /cacerts holds sub, policy and root in any order.
    auto issued = verify_issued(returned(testing::issue(sub, key.get(), "me")), key.get(),
                                {root.cert.get(), sub.cert.get(), policy.cert.get()});
    ASSERT_EQ(issued.chain.size(), 2u);
    EXPECT_EQ(X509_cmp(issued.chain[0].get(), sub.cert.get()), 0);
    EXPECT_EQ(X509_cmp(issued.chain[1].get(), policy.cert.get()), 0);
}

TEST_F(VerifyTest, RejectsCertificateForAnotherKey) {
    auto other = ec_key();
    std::string msg;
    EXPECT_EQ(error_kind(
                  [&] {
                      verify_issued(returned(testing::issue(issuing, other.get(), "me")), key.get(),
                                    anchors);
                  },
                  &msg),
              Error::Kind::key_mismatch);
    EXPECT_NE(msg.find("another key"), std::string::npos) << msg;
}

TEST_F(VerifyTest, RejectsExpiredAndNotYetValid) {
    std::string msg;
    EXPECT_EQ(error_kind(
                  [&] {
                      verify_issued(returned(testing::issue(issuing, key.get(), "me", -2h, -1h)),
                                    key.get(), anchors);
                  },
                  &msg),
              Error::Kind::cert_expired);
    EXPECT_NE(msg.find("expired"), std::string::npos) << msg;
    EXPECT_EQ(error_kind(
                  [&] {
                      verify_issued(returned(testing::issue(issuing, key.get(), "me", 1h, 2h)),
                                    key.get(), anchors);
                  },
                  &msg),
              Error::Kind::cert_not_yet_valid);
    EXPECT_NE(msg.find("not yet valid"), std::string::npos) << msg;
}

TEST_F(VerifyTest, RejectsAChainToAnotherCa) {
    auto stranger = testing::make_ca("Stranger");
    std::string msg;
    EXPECT_EQ(error_kind(
                  [&] {
                      verify_issued(returned(testing::issue(stranger, key.get(), "me")), key.get(),
                                    anchors);
                  },
                  &msg),
              Error::Kind::chain_untrusted);
    EXPECT_NE(msg.find("does not verify"), std::string::npos) << msg;
}

// ---- Retry-After and the interruptible wait ------------------------------------------------

TEST(RetryAfterTest, DeltaSecondsAndHttpDate) {
    EXPECT_EQ(parse_retry_after("7"), 7s);
    EXPECT_EQ(parse_retry_after(" 0 "), 0s);
    EXPECT_EQ(parse_retry_after("soon"), std::nullopt);
    EXPECT_EQ(parse_retry_after(""), std::nullopt);
    const auto now =
        std::chrono::system_clock::from_time_t(784111777);  // Sun, 06 Nov 1994 08:49:37 GMT
    EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 08:50:37 GMT", now), 60s);
    EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 08:40:37 GMT", now), 0s);
}

TEST(RetryAfterTest, WaitIsInterruptible) {
    std::stop_source src;
    std::jthread stopper([&] {
        std::this_thread::sleep_for(50ms);  // the thing under test is the wait's early return
        src.request_stop();
    });
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_FALSE(wait_for(30s, src.get_token()));
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
    EXPECT_TRUE(wait_for(1ms, std::stop_token{}));
}

TEST(SettingsTest, FromConfig) {
    config::Est c;
    c.server_url = "https://est.example:8443/";
    c.pinned_sha256 = std::string(31, 'a') + std::string(33, 'b');
    auto s = settings_from_config(c);
    EXPECT_EQ(s.trust.pinned_sha256.size(), 32u);
    c.pinned_sha256 = "abcd";
    EXPECT_EQ(error_kind([&] { settings_from_config(c); }), Error::Kind::config);
    c.pinned_sha256.clear();
    EXPECT_EQ(error_kind([&] { settings_from_config(c); }), Error::Kind::config);
    c.trust_anchor_file = "/x.pem";
    c.ca_label = "partner-a";
    Client client(settings_from_config(c));
    EXPECT_EQ(client.url("simpleenroll"),
              "https://est.example:8443/.well-known/est/partner-a/simpleenroll");
    c.server_url = "http://est.example";
    EXPECT_EQ(error_kind([&] { Client x(settings_from_config(c)); }), Error::Kind::config);
}

}  // namespace
}  // namespace mtls::est
