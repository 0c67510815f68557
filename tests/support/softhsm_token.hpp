// Test fixture: a throwaway SoftHSM2 token made by softhsm-setup/softhsm-setup.sh in a
// private temporary directory (removed with the fixture). The PIN stays in pin_file (mode
// 0600); read it with read_pin() when logging in, never put it on a command line.
//
// SoftHSM2 reads SOFTHSM2_CONF at C_Initialize, so one process talks to one token store at
// a time: call use() before loading the module (or pass env_assignment() to a child).
#pragma once

#include "tests/support/temp_dir.hpp"

#include <map>
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

    // Runs the setup script (with the init tool from this build tree). Throws
    // std::runtime_error carrying the script's stderr when it fails.
    static TempToken create(std::string_view label = "mtls-test");

    void use() const;                    // setenv("SOFTHSM2_CONF", conf)
    std::string env_assignment() const;  // "SOFTHSM2_CONF=<conf>", for mtls::test::run
    std::string read_pin() const;        // the first line of pin_file
};

// Where the project's script and the init tool built with it are.
std::string softhsm_setup_script();
std::string softhsm_init_tool();

// "NAME=value" lines (as printed by softhsm-setup.sh) as a map.
std::map<std::string, std::string> parse_assignments(std::string_view text);

// The percent-decoded value of attribute `name` in the path of a pkcs11: URI, or "".
std::string pkcs11_uri_attribute(std::string_view uri, std::string_view name);

}  // namespace mtls::test
