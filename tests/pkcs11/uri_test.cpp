#include <gtest/gtest.h>

#include "pkcs11/errors.hpp"
#include "pkcs11/uri.hpp"

using mtls::pkcs11::Error;
using mtls::pkcs11::Uri;

namespace {

std::string error_of(const std::string& text) {
    try {
        Uri::parse(text);
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

TEST(Pkcs11Uri, ParsesTokenAndObjectAttributes) {
    const Uri u = Uri::parse(
        "pkcs11:token=mtls%20agent;manufacturer=SoftHSM%20project;serial=5e1f0c2a;model=SoftHSM%"
        "20v2;"
        "object=host-key;id=%01%02%ff;type=private");
    EXPECT_EQ(u.token, "mtls agent");
    EXPECT_EQ(u.manufacturer, "SoftHSM project");
    EXPECT_EQ(u.serial, "5e1f0c2a");
    EXPECT_EQ(u.model, "SoftHSM v2");
    EXPECT_EQ(u.object, "host-key");
    EXPECT_EQ(u.id, std::string("\x01\x02\xff", 3));
    EXPECT_EQ(u.type, "private");
}

TEST(Pkcs11Uri, EmptyUriSelectsAnything) {
    const Uri u = Uri::parse("pkcs11:");
    EXPECT_FALSE(u.token);
    EXPECT_FALSE(u.id);
    EXPECT_EQ(u.token_part(), "pkcs11:");
}

TEST(Pkcs11Uri, SchemeIsCaseInsensitiveAndQueryAttributesParse) {
    const Uri u =
        Uri::parse("PKCS11:token=a?module-path=/usr/lib/softhsm/libsofthsm2.so&x-vendor=1");
    EXPECT_EQ(u.token, "a");
    EXPECT_EQ(u.module_path, "/usr/lib/softhsm/libsofthsm2.so");
}

TEST(Pkcs11Uri, RoundTripsThroughToString) {
    Uri u;
    u.token = "t;k=1";
    u.serial = "42";
    u.id = std::string("\x00\x10", 2);
    u.type = "cert";
    const Uri back = Uri::parse(u.to_string());
    EXPECT_EQ(back.token, u.token);
    EXPECT_EQ(back.serial, u.serial);
    EXPECT_EQ(back.id, u.id);
    EXPECT_EQ(back.type, u.type);
    EXPECT_EQ(u.to_string(), "pkcs11:token=t%3Bk%3D1;serial=42;id=%00%10;type=cert");
}

TEST(Pkcs11Uri, RefusesPinValueWithoutRepeatingIt) {
    const std::string e = error_of("pkcs11:token=a;pin-value=sekrit123");
    EXPECT_NE(e.find("pin-value is refused"), std::string::npos) << e;
    EXPECT_EQ(e.find("sekrit123"), std::string::npos) << e;
    const std::string q = error_of("pkcs11:token=a?pin-value=sekrit123");
    EXPECT_NE(q.find("pin-value is refused"), std::string::npos) << q;
    EXPECT_EQ(q.find("sekrit123"), std::string::npos) << q;
    const std::string s = error_of("pkcs11:token=a?pin-source=file:/etc/pin");
    EXPECT_NE(s.find("pin-source is refused"), std::string::npos) << s;
}

TEST(Pkcs11Uri, RejectsMalformedInput) {
    EXPECT_NE(error_of("http://x").find("does not start with pkcs11:"), std::string::npos);
    EXPECT_NE(error_of("pkcs11:token=a;token=b").find("given twice"), std::string::npos);
    EXPECT_NE(error_of("pkcs11:tokn=a").find("unknown attribute \"tokn\""), std::string::npos);
    EXPECT_NE(error_of("pkcs11:id=%0").find("truncated %-escape"), std::string::npos);
    EXPECT_NE(error_of("pkcs11:id=%zz").find("bad %-escape"), std::string::npos);
    EXPECT_NE(error_of("pkcs11:token=a b").find("not allowed"), std::string::npos);
    EXPECT_NE(error_of("pkcs11:type=secret").find("type must be"), std::string::npos);
    EXPECT_NE(error_of("pkcs11:token=a;;serial=1").find("empty attribute"), std::string::npos);
    EXPECT_NE(error_of("pkcs11:slot-id=x").find("slot-id must be a decimal number"),
              std::string::npos);
    EXPECT_NE(error_of("pkcs11:token").find("name=value"), std::string::npos);
}

TEST(Pkcs11Errors, NamesReturnCodes) {
    EXPECT_EQ(mtls::pkcs11::rv_name(CKR_PIN_INCORRECT), "CKR_PIN_INCORRECT");
    EXPECT_EQ(mtls::pkcs11::rv_name(CKR_SESSION_HANDLE_INVALID), "CKR_SESSION_HANDLE_INVALID");
    EXPECT_EQ(mtls::pkcs11::rv_name(CKR_OK), "CKR_OK");
    EXPECT_EQ(mtls::pkcs11::rv_name(0x0fffffffUL), "CKR_0x0fffffff");
    EXPECT_EQ(mtls::pkcs11::rv_name(CKR_VENDOR_DEFINED + 5), "CKR_VENDOR_DEFINED+0x5");
}

}  // namespace
