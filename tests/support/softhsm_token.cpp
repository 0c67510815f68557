#include "tests/support/softhsm_token.hpp"

#include "tests/support/subprocess.hpp"

#include <cstdlib>
#include <fstream>
#include <stdexcept>

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
    TempToken t{TempDir("mtls-token"), {}, {}, {}, {}, std::string(label), {}};
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
    return t;
}

void TempToken::use() const {
    ::setenv("SOFTHSM2_CONF", conf.c_str(), 1);
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
