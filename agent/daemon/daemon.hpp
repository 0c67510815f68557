// The daemon: wires the parts together in the order of DESIGN.md and runs until SIGTERM.
//
//   pkcs11::Token + ProviderContext   the token and its keys inside OpenSSL
//   identity::IdentityStore           the current identity snapshot
//   renewal::Renewer                  enrollment, renewal, rotation, key retirement (own thread)
//   token::TokenCache                 certificate-bound access tokens (own worker threads)
//   proxy::Proxy                      the loopback proxy (the io_context thread)
//   admin::Server                     the admin socket (the io_context thread)
//
// Signals: SIGTERM/SIGINT stop; SIGHUP reloads the configuration. Under systemd it sends
// READY=1 once the identity is settled and the listeners are bound, STATUS= lines, and
// WATCHDOG=1 pings when WatchdogSec= is set.
#pragma once

#include "config/config.hpp"

#include <string>

namespace mtls::daemon {

// Runs the agent; returns the process exit code. Never throws.
int run(const std::string& config_path, config::Config cfg);

}  // namespace mtls::daemon
