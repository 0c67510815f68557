// Shared helpers for the pkcs11 tests: the process's SoftHSM2 token, opened. Built with
// MTLS_TEST_TPM (tests/tpm), the same tests run against one tpm2-pkcs11 token on a software
// TPM instead (softhsm-setup/tpm-setup.sh, stopped at exit).
#pragma once

#include <ostream>

#include "pkcs11/token.hpp"
#include "tests/support/pkcs11_fixture.hpp"
#include "tests/support/softhsm_token.hpp"

namespace mtls::test {

#ifdef MTLS_TEST_TPM
inline const TempToken& shared_tpm_token() {
    static const TempToken t = [] {
        auto made = TempToken::create_tpm("mtls-tpm-test");
        made.use();
        return made;
    }();
    return t;
}
#endif

inline pkcs11::TokenOptions token_options() {
    pkcs11::TokenOptions o;
#ifdef MTLS_TEST_TPM
    const auto& t = shared_tpm_token();
    o.module_path = t.module;
    o.token_uri = t.uri;
#else
    const auto& t = shared_softhsm_token();
    o.module_path = t.module;
    o.token_uri = t.token_uri;
#endif
    o.pin = pkcs11::PinSource::file(t.pin_file);
    return o;
}

inline std::shared_ptr<pkcs11::Token> open_test_token() {
    return pkcs11::Token::open(token_options());
}

inline const char* key_type_name(config::KeyType t) {
    switch (t) {
        case config::KeyType::ec_p256:
            return "ec_p256";
        case config::KeyType::ec_p384:
            return "ec_p384";
        case config::KeyType::rsa_2048:
            return "rsa_2048";
        case config::KeyType::rsa_3072:
            return "rsa_3072";
    }
    return "unknown";
}

inline bool is_ec(config::KeyType t) {
    return t == config::KeyType::ec_p256 || t == config::KeyType::ec_p384;
}

}  // namespace mtls::test

namespace mtls::config {
// For gtest: parameterized test names and failure messages show "ec_p256", not bytes.
inline void PrintTo(KeyType t, std::ostream* os) {
    *os << mtls::test::key_type_name(t);
}
}  // namespace mtls::config
