// mtls-agent: the daemon's entry point. Parses flags, loads the config, runs.
#include "common/log.hpp"
#include "config/config.hpp"

#include <CLI/CLI.hpp>

#include <iostream>

int main(int argc, char** argv) {
    CLI::App app{"mtls-agent - keeps this host's mTLS identity on a PKCS#11 token and proxies "
                 "local HTTP calls to partners over mutual TLS"};
    std::string config_path = "/etc/mtls-agent/mtls-agent.toml";
    bool check = false;
    app.add_option("-c,--config", config_path, "configuration file (TOML)")->capture_default_str();
    app.add_flag("--check-config", check, "validate the configuration, print it with secrets "
                                          "redacted, exit 0 if valid and 1 if not");
    app.set_version_flag("--version", std::string("mtls-agent ") + MTLS_VERSION);
    CLI11_PARSE(app, argc, argv);

    auto loaded = mtls::config::load_file(config_path);
    if (!loaded.config) {
        for (const auto& e : loaded.errors) std::cerr << e.to_string() << '\n';
        return 1;
    }
    if (check) {
        std::cout << mtls::config::render(*loaded.config);
        return 0;
    }
    std::cerr << "mtls-agent: the daemon is not implemented yet\n";
    return 1;
}
