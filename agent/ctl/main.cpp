// mtls-agentctl: the operator CLI that talks to the agent's admin socket.
#include <CLI/CLI.hpp>

#include <iostream>

int main(int argc, char** argv) {
    CLI::App app{"mtls-agentctl - inspect and operate a running mtls-agent"};
    app.set_version_flag("--version", std::string("mtls-agentctl ") + MTLS_VERSION);
    app.require_subcommand(0, 1);
    CLI11_PARSE(app, argc, argv);
    std::cerr << "mtls-agentctl: not implemented yet\n";
    return 3;
}
