// The daemon: wires the parts together in the order of DESIGN.md and runs until SIGTERM.
//
//   pkcs11::Token + ProviderContext   the token and its keys inside OpenSSL
//   identity::IdentityStore           the current identity snapshot
//   renewal::Renewer                  enrollment, renewal, rotation, key retirement (own thread)
//   token::TokenCache                 certificate-bound access tokens (own worker threads)
//   proxy::Proxy                      the loopback proxy (accepts on the io_context thread;
//                                     sessions on listener.workers event loops: proxy.hpp)
//   admin::Server                     the admin socket (the io_context thread)
//
// Signals: SIGTERM/SIGINT stop gracefully (the proxy stops accepting, requests in flight get
// listener.drain_timeout, a second signal cuts them; proxy/drain.hpp); SIGHUP reloads the
// configuration, except while draining. Under systemd (notifier.hpp) it sends READY=1 once an
// identity is published and the listeners are bound, STATUS= on every change of the health
// verdict, RELOADING=1/READY=1 around reloads, STOPPING=1, and WATCHDOG=1 pings when
// WatchdogSec= is set.
#pragma once

#include "config/config.hpp"

#include <string>

namespace mtls::daemon {

// Runs the agent; returns the process exit code. Never throws.
int run(const std::string& config_path, config::Config cfg);

}  // namespace mtls::daemon
