#include "tests/support/pkcs11_fixture.hpp"

#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <system_error>

namespace mtls::test {

ShellResult run_command(const std::string& command, const std::string& input) {
    // stdin from a temp file (popen is one-directional); output captured through popen.
    char in_path[] = "/tmp/mtls-cmd-in-XXXXXX";
    const int fd = ::mkstemp(in_path);
    if (fd < 0) throw std::system_error(errno, std::generic_category(), "mkstemp");
    if (!input.empty() &&
        ::write(fd, input.data(), input.size()) != static_cast<ssize_t>(input.size())) {
        ::close(fd);
        ::unlink(in_path);
        throw std::runtime_error("cannot write command input");
    }
    ::close(fd);
    const std::string full = "(" + command + ") < " + in_path + " 2>&1";
    ShellResult r;
    FILE* p = ::popen(full.c_str(), "r");
    if (!p) {
        ::unlink(in_path);
        throw std::system_error(errno, std::generic_category(), "popen");
    }
    std::array<char, 4096> buf{};
    std::size_t n = 0;
    while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) r.output.append(buf.data(), n);
    const int st = ::pclose(p);
    ::unlink(in_path);
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return r;
}

SoftHsmToken SoftHsmToken::create(const std::string& label) {
    SoftHsmToken t;
    std::string tmpl = (std::filesystem::temp_directory_path() / "mtls-softhsm-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) throw std::system_error(errno, std::generic_category(), "mkdtemp");
    t.dir = tmpl;
    t.label = label;
    const std::string cmd = std::string("bash '") + MTLS_SOURCE_DIR +
                            "/softhsm-setup/softhsm-setup.sh' '" + t.dir.string() + "' --label '" +
                            label + "' --init-tool '" + MTLS_BINARY_DIR +
                            "/softhsm-setup/softhsm-token-init'";
    const ShellResult r = run_command(cmd);
    if (r.status != 0) throw std::runtime_error("softhsm-setup.sh failed: " + r.output);
    std::istringstream lines(r.output);
    std::string line;
    while (std::getline(lines, line)) {
        const auto eq = line.find('=');
        if (eq == std::string::npos) continue;
        const std::string k = line.substr(0, eq), v = line.substr(eq + 1);
        if (k == "SOFTHSM2_CONF")
            t.conf = v;
        else if (k == "MTLS_PKCS11_MODULE")
            t.module = v;
        else if (k == "MTLS_PKCS11_TOKEN_URI")
            t.token_uri = v;
        else if (k == "MTLS_PKCS11_PIN_FILE")
            t.pin_file = v;
    }
    if (t.conf.empty() || t.module.empty() || t.token_uri.empty() || t.pin_file.empty())
        throw std::runtime_error("softhsm-setup.sh printed no token: " + r.output);
    t.so_pin_file = (t.dir / "so-pin").string();
    ::setenv("SOFTHSM2_CONF", t.conf.c_str(), 1);
    return t;
}

std::string SoftHsmToken::user_pin() const {
    std::ifstream in(pin_file);
    std::string pin;
    std::getline(in, pin);
    return pin;
}

SoftHsmToken::SoftHsmToken(SoftHsmToken&& o) noexcept
    : dir(std::move(o.dir)),
      conf(std::move(o.conf)),
      module(std::move(o.module)),
      token_uri(std::move(o.token_uri)),
      pin_file(std::move(o.pin_file)),
      so_pin_file(std::move(o.so_pin_file)),
      label(std::move(o.label)) {
    o.dir.clear();
}

SoftHsmToken::~SoftHsmToken() {
    if (!dir.empty()) {
        std::error_code ec;
        std::filesystem::remove_all(dir, ec);
    }
}

const SoftHsmToken& shared_softhsm_token() {
    static SoftHsmToken t = SoftHsmToken::create();
    return t;
}

}  // namespace mtls::test
