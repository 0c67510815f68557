// A throwaway SoftHSM2 token for tests, made by softhsm-setup/softhsm-setup.sh in a fresh
// temporary directory (own softhsm2.conf, random PINs in files), removed at the end.
//
//   const auto& t = mtls::test::shared_softhsm_token();   // one per test process
//   pkcs11::TokenOptions o{t.module, t.token_uri, pkcs11::PinSource::file(t.pin_file)};
//
// SOFTHSM2_CONF is set in the environment before the module is first loaded (SoftHSM reads it
// in C_Initialize), so every token made in one process must be created before the module is
// loaded, or the module reloaded afterwards.
#pragma once

#include <filesystem>
#include <string>

namespace mtls::test {

struct SoftHsmToken {
    std::filesystem::path dir;
    std::string conf;       // SOFTHSM2_CONF
    std::string module;     // path of libsofthsm2.so
    std::string token_uri;  // pkcs11:token=…;serial=…
    std::string pin_file;   // user PIN, mode 0600
    std::string so_pin_file;
    std::string label;

    // Runs softhsm-setup.sh DIR --label LABEL --init-tool <build>/softhsm-setup/softhsm-token-init
    // and parses its output. Throws std::runtime_error with the script's output on failure.
    static SoftHsmToken create(const std::string& label = "mtls-test");
    std::string user_pin() const;  // the PIN itself (tests only)

    SoftHsmToken() = default;
    SoftHsmToken(SoftHsmToken&&) noexcept;
    SoftHsmToken& operator=(SoftHsmToken&&) = delete;
    SoftHsmToken(const SoftHsmToken&) = delete;
    ~SoftHsmToken();  // removes dir
};

// A token shared by the tests of one process, made on first use.
const SoftHsmToken& shared_softhsm_token();

// Runs a shell command, returns its exit status and combined stdout+stderr; `input` is
// written to its stdin. Never put secrets in `command`.
struct ShellResult {
    int status = -1;
    std::string output;
};
ShellResult run_command(const std::string& command, const std::string& input = {});

}  // namespace mtls::test
