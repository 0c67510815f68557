// softhsm-setup.sh makes a private SoftHSM2 token: checked by logging in to it through
// Cryptoki with the PIN from its PIN file.
#include "tests/support/cryptoki.hpp"
#include "tests/support/softhsm_token.hpp"
#include "tests/support/subprocess.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <sstream>

namespace {

using mtls::test::CryptokiModule;
using mtls::test::TempToken;

unsigned mode_of(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return 01000;  // never a valid result
    return st.st_mode & 07777;
}

bool inside(const std::string& path, const std::filesystem::path& dir) {
    auto p = std::filesystem::weakly_canonical(path).string();
    auto d = std::filesystem::weakly_canonical(dir).string() + "/";
    return p.compare(0, d.size(), d) == 0;
}

std::string read_file(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

CK_RV login(const CryptokiModule& m, CK_SLOT_ID slot, const std::string& pin) {
    CK_SESSION_HANDLE s = 0;
    CK_RV rv = m->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr, &s);
    if (rv != CKR_OK) return rv;
    std::string p = pin;
    rv = m->C_Login(s, CKU_USER, reinterpret_cast<CK_UTF8CHAR*>(p.data()), p.size());
    if (rv == CKR_OK) m->C_Logout(s);
    m->C_CloseSession(s);
    return rv;
}

TEST(SoftHsmSetup, MakesPrivateTokenThatAcceptsItsPin) {
    TempToken t = TempToken::create("setup-test");

    EXPECT_EQ(mode_of(t.pin_file), 0600u);
    EXPECT_EQ(mode_of((t.dir / "so-pin").string()), 0600u);
    EXPECT_EQ(mode_of(t.dir.path().string()), 0700u);
    EXPECT_TRUE(inside(t.conf, t.dir.path())) << t.conf;
    EXPECT_TRUE(inside(t.pin_file, t.dir.path())) << t.pin_file;
    // The conf keeps the token store inside the directory too (never /var/lib/softhsm).
    std::string conf = read_file(t.conf);
    EXPECT_NE(conf.find("directories.tokendir = " +
                        std::filesystem::canonical(t.dir.path()).string() + "/tokens"),
              std::string::npos)
        << conf;
    EXPECT_EQ(t.uri, "pkcs11:token=setup-test;serial=" + t.serial);
    ASSERT_FALSE(t.serial.empty());

    t.use();
    CryptokiModule m(t.module);
    // The slot is found from what the script printed: the URI's token label and serial.
    const auto label = mtls::test::pkcs11_uri_attribute(t.uri, "token");
    EXPECT_EQ(label, "setup-test");
    auto slot = m.find_token(label, mtls::test::pkcs11_uri_attribute(t.uri, "serial"));
    ASSERT_TRUE(slot.has_value()) << "no token matching " << t.uri;
    EXPECT_EQ(login(m, *slot, t.read_pin()), CKR_OK);
    EXPECT_EQ(login(m, *slot, t.read_pin() + "x"), CKR_PIN_INCORRECT);
    // The right PIN still works after a wrong one (one failure does not lock the token).
    EXPECT_EQ(login(m, *slot, t.read_pin()), CKR_OK);
}

TEST(SoftHsmSetup, SecondRunReusesTheToken) {
    TempToken t = TempToken::create("reuse-test");
    const std::string pin_before = t.read_pin();
    auto again =
        mtls::test::run({mtls::test::softhsm_setup_script(), t.dir.path().string(), "--label",
                         "reuse-test", "--init-tool", mtls::test::softhsm_init_tool()});
    ASSERT_EQ(again.exit_code, 0) << again.err;
    auto vars = mtls::test::parse_assignments(again.out);
    EXPECT_EQ(vars["MTLS_PKCS11_TOKEN_URI"], t.uri);
    EXPECT_EQ(mtls::test::pkcs11_uri_attribute(vars["MTLS_PKCS11_TOKEN_URI"], "serial"), t.serial);
    EXPECT_EQ(vars["SOFTHSM2_CONF"], t.conf);
    EXPECT_EQ(t.read_pin(), pin_before);  // PINs are kept, not regenerated
    // The PIN never appears in what the script prints.
    EXPECT_EQ(again.out.find(pin_before), std::string::npos);
    EXPECT_EQ(again.err.find(pin_before), std::string::npos);

    t.use();
    CryptokiModule m(t.module);
    auto slot = m.find_token("reuse-test", t.serial);
    ASSERT_TRUE(slot.has_value());
    EXPECT_EQ(login(m, *slot, pin_before), CKR_OK);
}

TEST(SoftHsmSetup, FailsClearlyWithoutInitTool) {
    mtls::test::TempDir dir("mtls-token");
    auto r = mtls::test::run({mtls::test::softhsm_setup_script(), dir.path().string(),
                              "--init-tool", (dir / "missing-tool").string()});
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("softhsm-token-init not found"), std::string::npos) << r.err;
}

}  // namespace

namespace {
TEST(Pkcs11UriAttribute, DecodesPercentEncoding) {
    EXPECT_EQ(mtls::test::pkcs11_uri_attribute("pkcs11:token=my%20token;serial=ab%3Bc", "token"),
              "my token");
    EXPECT_EQ(mtls::test::pkcs11_uri_attribute("pkcs11:token=my%20token;serial=ab%3Bc", "serial"),
              "ab;c");
    EXPECT_EQ(mtls::test::pkcs11_uri_attribute("pkcs11:token=t?pin-source=x", "token"), "t");
    EXPECT_EQ(mtls::test::pkcs11_uri_attribute("pkcs11:token=t", "serial"), "");
    EXPECT_EQ(mtls::test::pkcs11_uri_attribute("token=t", "token"), "");
}
}  // namespace
