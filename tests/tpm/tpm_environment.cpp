// tests/tpm: every test needs a software TPM (swtpm, tpm2-abrmd, tpm2-pkcs11). Where that
// stack is not installed, all of them are skipped with one message naming what is missing;
// where it is installed but does not start, they fail (with the setup script's output).
#include <gtest/gtest.h>

#include "tests/support/softhsm_token.hpp"

namespace {

class TpmEnvironment : public ::testing::Environment {
  public:
    void SetUp() override {
        if (auto why = mtls::test::tpm_unavailable()) GTEST_SKIP() << *why;
    }
};

[[maybe_unused]] auto* const tpm_environment =
    ::testing::AddGlobalTestEnvironment(new TpmEnvironment);

}  // namespace
