#include "tests/config/config_fixture.hpp"

#include <sstream>

namespace mtls::test {

void ConfigTest::SetUp() {
    dir.write("module.so", "", 0644);
    dir.write("est-basic", "user:password\n", 0600);
    dir.write("pin", "1234\n", 0600);
    dir.write("ca.pem", "not parsed by the config check\n", 0644);
}

std::string ConfigTest::base() const {
    return "[pkcs11]\n"
           "module = \"" +
           d() +
           "/module.so\"\n"
           "token = \"pkcs11:token=t\"\n"
           "pin_env = \"MTLS_TEST_PIN\"\n"
           "\n"
           "[est]\n"
           "server = \"https://est.example:8443\"\n"
           "pinned_sha256 = \"" +
           std::string(64, 'a') +
           "\"\n"
           "basic_credentials = \"" +
           d() +
           "/est-basic\"\n"
           "common_name = \"host-17.example\"\n"
           "\n"
           "[[routes]]\n"
           "name = \"partner-a\"\n"
           "path_prefix = \"/partner-a/\"\n"
           "upstream = \"https://api.partner-a.example/\"\n";
}

std::string ConfigTest::replace_line(const std::string& text, int n, std::string_view with) {
    std::istringstream in(text);
    std::string line, out;
    for (int i = 1; std::getline(in, line); ++i) {
        out += (i == n ? std::string(with) : line);
        out += '\n';
    }
    return out;
}

std::vector<std::string> ConfigTest::errors(const std::string& text) {
    std::vector<std::string> out;
    for (const auto& e : config::load_string(text, "agent.toml").errors)
        out.push_back(e.to_string());
    return out;
}

std::optional<config::Config> ConfigTest::load(const std::string& text) {
    auto r = config::load_string(text, "agent.toml");
    for (const auto& e : r.errors) ADD_FAILURE() << e.to_string();
    return r.config;
}

}  // namespace mtls::test
