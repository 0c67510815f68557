// Test fixture: a throwaway SoftHSM2 token made by softhsm-setup/softhsm-setup.sh in a
// private temporary directory (removed with the fixture). The PIN stays in pin_file (mode
// 0600); read it with read_pin() when logging in, never put it on a command line.
//
// SoftHSM2 reads SOFTHSM2_CONF at C_Initialize, so one process talks to one token store at
// a time: call use() before loading the module (or pass env_assignment() to a child).
//
// TempToken::create_tpm() makes a tpm2-pkcs11 token instead (softhsm-setup/tpm-setup.sh:
// swtpm + a private D-Bus + tpm2-abrmd, stopped again when the token is destroyed); its
// module reads TPM2_PKCS11_STORE, TPM2_PKCS11_TCTI and DBUS_SESSION_BUS_ADDRESS, all in env.
#pragma once

#include "tests/support/temp_dir.hpp"

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace mtls::test {

struct TempToken {
    TempDir dir;
    std::string module;    // path of libsofthsm2.so
    std::string conf;      // the token store's own softhsm2.conf (inside dir)
    std::string uri;       // pkcs11:token=<label>;serial=<serial>
    std::string pin_file;  // the user PIN, mode 0600 (inside dir)
    std::string label;
    std::string serial;
    // What the module needs in its environment (SOFTHSM2_CONF=conf; for a TPM token the
    // tpm2-pkcs11 store, TCTI and bus).
    std::map<std::string, std::string> env = {};
    // Stops the TPM token's daemons when the last copy goes (before dir is removed).
    std::shared_ptr<void> daemons = {};

    // Runs the setup script (with the init tool from this build tree). Throws
    // std::runtime_error carrying the script's stderr when it fails.
    static TempToken create(std::string_view label = "mtls-test");
    // Runs softhsm-setup/tpm-setup.sh (swtpm, dbus-daemon, tpm2-abrmd, tpm2_ptool). Throws
    // std::runtime_error with the script's stderr when it fails; check tpm_unavailable() first.
    static TempToken create_tpm(std::string_view label = "mtls-test");
    bool is_tpm() const { return env.count("TPM2_PKCS11_STORE") != 0; }

    void use() const;                    // setenv() every entry of env
    std::string env_assignment() const;  // "SOFTHSM2_CONF=<conf>", for mtls::test::run
    std::string read_pin() const;        // the first line of pin_file
};

// Why a TPM token cannot be made on this machine (a program or library of the TPM stack is
// not installed: names it and the package), or nullopt when it can. Tests GTEST_SKIP on it.
std::optional<std::string> tpm_unavailable();
std::string tpm_setup_script();

// Where the project's script and the init tool built with it are.
std::string softhsm_setup_script();
std::string softhsm_init_tool();

// "NAME=value" lines (as printed by softhsm-setup.sh) as a map.
std::map<std::string, std::string> parse_assignments(std::string_view text);

// The percent-decoded value of attribute `name` in the path of a pkcs11: URI, or "".
std::string pkcs11_uri_attribute(std::string_view uri, std::string_view name);

}  // namespace mtls::test
