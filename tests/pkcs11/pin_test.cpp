#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "pkcs11/errors.hpp"
#include "pkcs11/pin.hpp"

using mtls::pkcs11::Error;
using mtls::pkcs11::PinSource;

namespace {

class PinTest : public ::testing::Test {
  protected:
    void SetUp() override {
        std::string tmpl = (std::filesystem::temp_directory_path() / "mtls-pin-XXXXXX").string();
        ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
        dir = tmpl;
    }
    void TearDown() override { std::filesystem::remove_all(dir); }
    void write(const std::string& name, const std::string& data) {
        std::ofstream(dir / name, std::ios::binary) << data;
    }
    std::string message(const PinSource& s) {
        try {
            s.read();
        } catch (const Error& e) {
            return e.what();
        }
        return "";
    }
    std::filesystem::path dir;
};

TEST_F(PinTest, ReadsFirstLineOfFile) {
    write("pin", "1234abcd\r\nignored\n");
    auto pin = PinSource::file((dir / "pin").string()).read();
    EXPECT_EQ(std::string(pin.data(), pin.size()), "1234abcd");
}

TEST_F(PinTest, ReadsEnvironmentVariable) {
    ::setenv("MTLS_TEST_PIN_VAR", "9876\n", 1);
    auto pin = PinSource::env("MTLS_TEST_PIN_VAR").read();
    EXPECT_EQ(std::string(pin.data(), pin.size()), "9876");
    ::unsetenv("MTLS_TEST_PIN_VAR");
    EXPECT_NE(message(PinSource::env("MTLS_TEST_PIN_VAR"))
                  .find("environment variable MTLS_TEST_PIN_VAR is not set"),
              std::string::npos);
}

TEST_F(PinTest, ReadsSystemdCredential) {
    write("token-pin", "credpin");
    ::setenv("CREDENTIALS_DIRECTORY", dir.c_str(), 1);
    auto pin = PinSource::credential("token-pin").read();
    EXPECT_EQ(std::string(pin.data(), pin.size()), "credpin");
    EXPECT_NE(message(PinSource::credential("../etc/passwd")).find("without '/'"),
              std::string::npos);
    ::unsetenv("CREDENTIALS_DIRECTORY");
    EXPECT_NE(message(PinSource::credential("token-pin")).find("CREDENTIALS_DIRECTORY is not set"),
              std::string::npos);
}

TEST_F(PinTest, ErrorsNameTheSourceNotThePin) {
    const std::string missing = (dir / "nope").string();
    const std::string m = message(PinSource::file(missing));
    EXPECT_NE(m.find("pin_file " + missing), std::string::npos) << m;
    EXPECT_NE(m.find("No such file"), std::string::npos) << m;
    write("empty", "\n");
    EXPECT_NE(message(PinSource::file((dir / "empty").string())).find("is empty"),
              std::string::npos);
    EXPECT_EQ(PinSource::file("/etc/x").describe(), "pin_file /etc/x");
    EXPECT_EQ(PinSource::env("V").describe(), "pin_env V");
}

TEST(SecretString, MovesAndOwns) {
    mtls::pkcs11::SecretString a("secret");
    mtls::pkcs11::SecretString b(std::move(a));
    EXPECT_TRUE(a.empty());
    EXPECT_EQ(std::string(b.data(), b.size()), "secret");
    a = std::move(b);
    EXPECT_EQ(std::string(a.data(), a.size()), "secret");
}

}  // namespace
