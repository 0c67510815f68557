#include "tests/support/softhsm_token.hpp"

#include "tests/support/subprocess.hpp"

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <vector>

namespace mtls::test {

std::string softhsm_setup_script() {
    return std::string(MTLS_SOURCE_DIR) + "/softhsm-setup/softhsm-setup.sh";
}
std::string softhsm_init_tool() {
    return std::string(MTLS_BINARY_DIR) + "/softhsm-setup/softhsm-token-init";
}

std::map<std::string, std::string> parse_assignments(std::string_view text) {
    std::map<std::string, std::string> out;
    std::size_t start = 0;
    while (start < text.size()) {
        auto nl = text.find('\n', start);
        std::string_view line = text.substr(start, nl == std::string_view::npos ? nl : nl - start);
        if (auto eq = line.find('='); eq != std::string_view::npos && eq > 0)
            out.emplace(std::string(line.substr(0, eq)), std::string(line.substr(eq + 1)));
        if (nl == std::string_view::npos) break;
        start = nl + 1;
    }
    return out;
}

std::string pkcs11_uri_attribute(std::string_view uri, std::string_view name) {
    if (uri.substr(0, 7) != "pkcs11:") return {};
    std::string_view path = uri.substr(
        7, uri.find('?') == std::string_view::npos ? std::string_view::npos : uri.find('?') - 7);
    std::size_t start = 0;
    while (start <= path.size()) {
        auto semi = path.find(';', start);
        std::string_view attr =
            path.substr(start, semi == std::string_view::npos ? semi : semi - start);
        auto eq = attr.find('=');
        if (eq != std::string_view::npos && attr.substr(0, eq) == name) {
            std::string out;
            std::string_view v = attr.substr(eq + 1);
            auto hexval = [](char c) {
                return c >= '0' && c <= '9'   ? c - '0'
                       : c >= 'a' && c <= 'f' ? c - 'a' + 10
                       : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                              : -1;
            };
            for (std::size_t i = 0; i < v.size(); ++i) {
                if (v[i] == '%' && i + 2 < v.size() && hexval(v[i + 1]) >= 0 &&
                    hexval(v[i + 2]) >= 0) {
                    out += static_cast<char>(hexval(v[i + 1]) * 16 + hexval(v[i + 2]));
                    i += 2;
                } else {
                    out += v[i];
                }
            }
            return out;
        }
        if (semi == std::string_view::npos) break;
        start = semi + 1;
    }
    return {};
}

TempToken TempToken::create(std::string_view label) {
    TempToken t{TempDir("mtls-token"), {}, {}, {}, {}, std::string(label), {}, {}, {}};
    auto r = run({softhsm_setup_script(), t.dir.path().string(), "--label", t.label, "--init-tool",
                  softhsm_init_tool()});
    if (r.exit_code != 0)
        throw std::runtime_error("softhsm-setup.sh failed (exit " + std::to_string(r.exit_code) +
                                 "): " + r.err);
    auto vars = parse_assignments(r.out);
    t.conf = vars["SOFTHSM2_CONF"];
    t.module = vars["MTLS_PKCS11_MODULE"];
    t.uri = vars["MTLS_PKCS11_TOKEN_URI"];
    t.pin_file = vars["MTLS_PKCS11_PIN_FILE"];
    t.serial = pkcs11_uri_attribute(t.uri, "serial");
    if (t.conf.empty() || t.module.empty() || t.uri.empty() || t.pin_file.empty())
        throw std::runtime_error("softhsm-setup.sh printed an incomplete result: " + r.out);
    t.env["SOFTHSM2_CONF"] = t.conf;
    return t;
}

std::string tpm_setup_script() {
    return std::string(MTLS_SOURCE_DIR) + "/softhsm-setup/tpm-setup.sh";
}

std::optional<std::string> tpm_unavailable() {
    struct Need {
        const char* what;
        std::vector<const char*> paths;
        const char* package;
    };
    const Need needs[] = {
        {"swtpm", {"/usr/bin/swtpm"}, "swtpm"},
        {"tpm2-abrmd", {"/usr/sbin/tpm2-abrmd", "/usr/bin/tpm2-abrmd"}, "tpm2-abrmd"},
        {"dbus-daemon", {"/usr/bin/dbus-daemon"}, "dbus-daemon"},
        {"tpm2_ptool", {"/usr/bin/tpm2_ptool"}, "libtpm2-pkcs11-tools"},
        {"the tpm2-pkcs11 module",
         {"/usr/lib/x86_64-linux-gnu/pkcs11/libtpm2_pkcs11.so",
          "/usr/lib/aarch64-linux-gnu/pkcs11/libtpm2_pkcs11.so"},
         "libtpm2-pkcs11-1"},
        {"the tabrmd TCTI",
         {"/usr/lib/x86_64-linux-gnu/libtss2-tcti-tabrmd.so.0",
          "/usr/lib/aarch64-linux-gnu/libtss2-tcti-tabrmd.so.0"},
         "libtss2-tcti-tabrmd0"},
    };
    for (const auto& n : needs) {
        bool found = false;
        for (const char* p : n.paths)
            found = found || ::access(p, X_OK) == 0 || ::access(p, R_OK) == 0;
        if (!found)
            return std::string("no software TPM here: ") + n.what + " is not installed (apt-get " +
                   "install " + n.package + ", or scripts/deps.sh)";
    }
    return std::nullopt;
}

TempToken TempToken::create_tpm(std::string_view label) {
    TempToken t{TempDir("mtls-tpm"), {}, {}, {}, {}, std::string(label), {}, {}, {}};
    const std::string dir = t.dir.path().string();
    auto r = run({tpm_setup_script(), dir, "--label", t.label}, {}, std::chrono::seconds(90));
    if (r.exit_code != 0) {
        run({tpm_setup_script(), dir, "--stop"});
        throw std::runtime_error("tpm-setup.sh failed (exit " + std::to_string(r.exit_code) +
                                 "): " + r.err);
    }
    // From here on the daemons are stopped with the token (or when this throws).
    t.daemons = std::shared_ptr<void>(nullptr, [dir](void*) {
        run({tpm_setup_script(), dir, "--stop"}, {}, std::chrono::seconds(30));
    });
    auto vars = parse_assignments(r.out);
    t.module = vars["MTLS_PKCS11_MODULE"];
    t.uri = vars["MTLS_PKCS11_TOKEN_URI"];
    t.pin_file = vars["MTLS_PKCS11_PIN_FILE"];
    t.serial = pkcs11_uri_attribute(t.uri, "serial");
    for (const char* k : {"TPM2_PKCS11_STORE", "TPM2_PKCS11_TCTI", "DBUS_SESSION_BUS_ADDRESS",
                          "TPM2_PKCS11_LOG_LEVEL"})
        t.env[k] = vars[k];
    if (t.module.empty() || t.uri.empty() || t.pin_file.empty() ||
        t.env["TPM2_PKCS11_STORE"].empty() || t.env["DBUS_SESSION_BUS_ADDRESS"].empty())
        throw std::runtime_error("tpm-setup.sh printed an incomplete result: " + r.out);
    return t;
}

void TempToken::use() const {
    for (const auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
}

std::string TempToken::env_assignment() const {
    return "SOFTHSM2_CONF=" + conf;
}

std::string TempToken::read_pin() const {
    std::ifstream in(pin_file);
    std::string pin;
    if (!in || !std::getline(in, pin) || pin.empty())
        throw std::runtime_error("cannot read the PIN from " + pin_file);
    return pin;
}

}  // namespace mtls::test
