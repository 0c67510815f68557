// mtls-agent: the daemon's entry point. Parses flags, loads the config, runs.
#include "agent/daemon/daemon.hpp"
#include "common/log.hpp"
#include "config/config.hpp"

#include <openssl/crypto.h>
#include <CLI/CLI.hpp>
#if MTLS_MIMALLOC
#include <mimalloc.h>
#endif

#include <iostream>

namespace {

// The malloc this process runs on (MTLS_ALLOCATOR at build time), for --version.
std::string allocator() {
#if MTLS_MIMALLOC
    const int v = mi_version();  // e.g. 209 for 2.0.9
    return "mimalloc " + std::to_string(v / 100) + "." + std::to_string(v / 10 % 10) + "." +
           std::to_string(v % 10);
#else
    return "system malloc";
#endif
}

constexpr const char* kFooter = R"(
NAME
  mtls-agent - mutual-TLS identity on a PKCS#11 token, and a loopback proxy to partners

SYNOPSIS
  mtls-agent [-c FILE]
  mtls-agent --check-config [-q] [-c FILE]
  mtls-agent --help | --version

DESCRIPTION
  mtls-agent keeps this host's private key on a PKCS#11 token (HSM, TPM or SoftHSM2),
  enrolls and renews its client certificate over EST (RFC 7030), obtains OAuth 2.0
  certificate-bound access tokens (RFC 8705), and listens on loopback for plain HTTP:
  each call is matched to a route and forwarded to the partner over mutual TLS with the
  route's access token added. It normally runs as the systemd service mtls-agent.service
  and is operated with mtls-agentctl(8).

  On SIGTERM or SIGINT the agent stops accepting connections and lets requests in
  flight finish for up to listener.drain_timeout (default 30s), then cuts what remains;
  a second SIGTERM or SIGINT cuts them at once. SIGHUP reloads the configuration (like
  mtls-agentctl reload); while draining it is ignored. Under systemd (Type=notify) the
  agent reports READY=1 once it serves with an identity, STATUS= (enrolling, serving,
  degraded: REASON, failing: REASON), RELOADING=1 around a reload, STOPPING=1, and
  WATCHDOG=1 pings when WatchdogSec= is set.

  The configuration is TOML. Unknown keys are errors. Every problem is reported, one per
  line, as FILE:LINE: KEY: MESSAGE, for example
    mtls-agent.toml:14: routes[1].upstream: "htp://x" is not an https URL
  Files named in the configuration (PIN file, EST credentials, CA files) are checked for
  readability at load; the PIN and credentials themselves are never read by the check nor
  printed.

OPTIONS
  -c, --config FILE   the configuration file (default /etc/mtls-agent/mtls-agent.toml)
  --check-config      load and validate the configuration, then exit. When it is valid,
                      print the effective configuration as TOML (every default written
                      out, no secrets: PINs and credentials appear only as their source)
                      on standard output. Otherwise print every error on standard error.
  -q, --quiet         with --check-config: print nothing when the configuration is valid,
                      only the errors when it is not (for ExecStartPre=; the exit status
                      is the same)
  --version           print the version, the malloc and the OpenSSL it runs on, and exit
  -h, --help          print this help and exit

FILES
  /etc/mtls-agent/mtls-agent.toml   the configuration (documented sample installed there)
  /var/lib/mtls-agent/              state: certificate chain, key labels ([agent] state_dir)
  /run/mtls-agent/admin.sock        the admin socket used by mtls-agentctl ([admin] socket)

ENVIRONMENT
  The variable named by pkcs11.pin_env, when that is the PIN source.
  CREDENTIALS_DIRECTORY (set by systemd) for pkcs11.pin_credential.

EXIT STATUS
  0   the configuration is valid (--check-config), or the daemon stopped cleanly
      (also when a drain was cut short by listener.drain_timeout or a second signal)
  1   the configuration is invalid or unreadable, or the daemon failed
  2   wrong command-line usage

EXAMPLES
  Check a configuration before reloading the service:
    mtls-agent --check-config -q -c /etc/mtls-agent/mtls-agent.toml && systemctl reload mtls-agent
  Show the effective configuration with every default:
    mtls-agent --check-config | less

SEE ALSO
  mtls-agentctl(8), mtls-agent.toml(5), systemd.exec(5), sd_notify(3),
  README.md "Configuration reference"
)";

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{
        "mtls-agent - keeps this host's mTLS identity on a PKCS#11 token and proxies "
        "local HTTP calls to partners over mutual TLS"};
    std::string config_path = "/etc/mtls-agent/mtls-agent.toml";
    bool check = false;
    bool quiet = false;
    app.add_option("-c,--config", config_path, "configuration file (TOML)")
        ->type_name("FILE")
        ->capture_default_str();
    auto* check_opt = app.add_flag("--check-config", check,
                                   "validate the configuration, print it with secrets "
                                   "redacted, exit 0 if valid and 1 if not");
    app.add_flag("-q,--quiet", quiet,
                 "with --check-config: print nothing when valid, only errors when not")
        ->needs(check_opt);
    app.set_version_flag("--version", std::string("mtls-agent ") + MTLS_VERSION + " (" +
                                          allocator() + ", " + OpenSSL_version(OPENSSL_VERSION) +
                                          ")");
    app.footer(kFooter);
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        int rc = app.exit(e);
        return rc == 0 ? 0 : 2;
    }

    auto loaded = mtls::config::load_file(config_path);
    if (!loaded.config) {
        for (const auto& e : loaded.errors) std::cerr << e.to_string() << '\n';
        return 1;
    }
    if (check) {
        if (!quiet) std::cout << mtls::config::render(*loaded.config);
        return 0;
    }
    return mtls::daemon::run(config_path, std::move(*loaded.config));
}
