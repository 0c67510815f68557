// mtls-agentctl: the operator CLI. Talks to the running agent over its admin socket.
#include "agent/ctl/client.hpp"
#include "agent/ctl/render.hpp"

#include <CLI/CLI.hpp>

#include <cstdlib>
#include <iostream>

namespace {

constexpr int kOk = 0, kFailing = 2, kUnreachable = 3, kRefused = 4, kUsage = 64;

const char* kFooter = R"(
DESCRIPTION
  mtls-agentctl inspects and operates a running mtls-agent through its admin socket
  (a Unix socket; JSON lines, see docs/admin-protocol.md). Callers must be root, the
  agent's user, a member of the admin group (admin.group, mtls-admin in the packaged
  service: usermod -aG mtls-admin USER, then log in again), or listed in
  admin.allowed_uids / admin.allowed_gids.

COMMANDS
  status            health, identity (subject, serial, validity, key, thumbprint),
                    renewal schedule, access tokens, routes
  cert [--jwk]      the current certificate chain, PEM: the leaf, then every
                    intermediate up to (not including) the root, as sent to partners;
                    --jwk: the JWK to register at an authorization server for
                    self_signed_tls_client_auth (x5c, x5t#S256) — again after every
                    renewal and rotation
  rotate [--wait]   new key on the token, enroll, install, new tokens, retire old key
                    after [key] retire_grace (requests in flight finish on it)
  rotate --compromised [--wait]
                    the key is burnt: from the moment the agent accepts the command no
                    request uses the old identity (its upstream connections are closed,
                    requests in flight on them cut, its access tokens dropped; new
                    requests get 503 identity_compromised until the new identity
                    serves); the old key is destroyed on the token at once (no grace);
                    then a new key is enrolled with the bootstrap credentials (a revoked
                    certificate cannot authenticate a re-enrollment). Returns once the
                    old key is gone; --wait: once the new identity serves (its tokens
                    fetched), or fails naming what is missing (e.g. est.basic_credentials)
                    — the agent then retries by itself. Revoke the old certificate at
                    the CA as well (README: "A key is compromised")
  renew [--wait]    renew the certificate now with the configured key policy
  reload            re-read the configuration file; an invalid one is rejected and
                    the running configuration kept
  tokens flush      drop every cached access token
  metrics           Prometheus text exposition

EXIT STATUS
  0  ok (status: healthy)       1  status: degraded
  2  status: failing, or the command failed
  3  cannot reach the agent
  4  refused: the socket's permissions (connect: EACCES/EPERM) or the agent turned the
     caller away; the message names the group to join
  64 usage error

ENVIRONMENT
  MTLS_AGENT_SOCKET  admin socket path (overridden by --socket)

EXAMPLES
  mtls-agentctl status
  mtls-agentctl status --json | jq .identity.not_after
  mtls-agentctl rotate --wait
  mtls-agentctl rotate --compromised --wait     # after revoking the certificate at the CA
  mtls-agentctl cert > /tmp/chain.pem && openssl x509 -in /tmp/chain.pem -noout -subject
  mtls-agentctl cert --jwk | jq '{keys: [.]}'    # a JWKS to register at the AS
  mtls-agentctl --socket /run/mtls-agent/admin.sock metrics

SEE ALSO
  mtls-agent(8), mtls-agent.toml(5)
)";

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"mtls-agentctl - inspect and operate a running mtls-agent", "mtls-agentctl"};
    app.footer(kFooter);
    app.set_version_flag("--version", std::string("mtls-agentctl ") + MTLS_VERSION);
    std::string socket = "/run/mtls-agent/admin.sock";
    if (const char* env = std::getenv("MTLS_AGENT_SOCKET"); env && *env) socket = env;
    bool json = false;
    double timeout_s = 10;
    app.add_option("-s,--socket", socket, "admin socket path")->capture_default_str();
    app.add_flag("--json", json, "print the agent's answer as JSON (for scripts)");
    app.add_option("--timeout", timeout_s,
                   "seconds to wait for an answer (rotate/renew --wait and "
                   "rotate --compromised: at least 300)")
        ->capture_default_str();
    app.require_subcommand(1);
    app.fallthrough();  // global options may follow the subcommand

    bool wait = false;
    auto* status = app.add_subcommand("status", "health, identity, renewal, tokens, routes");
    auto* cert = app.add_subcommand("cert", "print the current certificate chain (PEM)");
    bool jwk = false;
    cert->add_flag("--jwk", jwk,
                   "print the JWK (x5c, x5t#S256) to register for self_signed_tls_client_auth");
    auto* rotate =
        app.add_subcommand("rotate", "new key on the token, enroll, install, retire old key");
    rotate->add_flag("--wait", wait, "return when the rotation is complete");
    bool compromised = false;
    rotate->add_flag("--compromised", compromised,
                     "the key is burnt: stop using it at once, destroy it now (no grace), "
                     "enroll a new key with the bootstrap credentials");
    auto* renew = app.add_subcommand("renew", "renew the certificate now");
    renew->add_flag("--wait", wait, "return when the renewal is complete");
    auto* reload = app.add_subcommand("reload", "re-read the configuration file");
    auto* tokens = app.add_subcommand("tokens", "access token cache");
    auto* flush = tokens->add_subcommand("flush", "drop every cached access token");
    tokens->require_subcommand(1);
    auto* metrics = app.add_subcommand("metrics", "Prometheus text exposition");

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        int rc = app.exit(e);
        return rc == 0 ? 0 : kUsage;
    }

    mtls::admin::Request req;
    if (status->parsed())
        req.cmd = "status";
    else if (cert->parsed())
        req.cmd = "cert";
    else if (rotate->parsed())
        req.cmd = "rotate";
    else if (renew->parsed())
        req.cmd = "renew";
    else if (reload->parsed())
        req.cmd = "reload";
    else if (flush->parsed())
        req.cmd = "tokens.flush";
    else if (metrics->parsed())
        req.cmd = "metrics";
    if (cert->parsed() && jwk) req.args["jwk"] = true;
    if (rotate->parsed() || renew->parsed()) {
        req.args["wait"] = wait;
        if (rotate->parsed() && compromised) req.args["compromised"] = true;
        if ((wait || compromised) && timeout_s < 300) timeout_s = 300;
    }

    nlohmann::json resp;
    try {
        resp = mtls::ctl::call(socket, req,
                               std::chrono::milliseconds(static_cast<long long>(timeout_s * 1000)));
    } catch (const mtls::ctl::Refused& e) {
        std::cerr << "mtls-agentctl: " << e.what() << "\n";
        return kRefused;
    } catch (const mtls::ctl::Unreachable& e) {
        std::cerr << "mtls-agentctl: " << e.what() << "\n";
        return kUnreachable;
    }

    if (!resp.value("ok", false)) {
        auto err = resp.value("error", nlohmann::json::object());
        std::string code = err.value("code", "error");
        if (code == "refused") {
            std::cerr << "mtls-agentctl: " << mtls::ctl::refusal_message(socket) << "\n";
            if (json) std::cout << resp.dump(2) << "\n";
            return kRefused;
        }
        if (json)
            std::cout << resp.dump(2) << "\n";
        else
            std::cerr << "mtls-agentctl: " << req.cmd << " failed: " << err.value("message", "")
                      << " [" << code << "]\n";
        if (!json && err.contains("errors"))
            for (const auto& e : err["errors"]) std::cerr << "  " << e.get<std::string>() << "\n";
        return code == "refused" ? kRefused : kFailing;
    }
    const auto& result = resp["result"];
    if (json) {
        std::cout << result.dump(2) << "\n";
    } else if (req.cmd == "status") {
        std::cout << mtls::ctl::render_status(result);
    } else if (req.cmd == "cert" && jwk) {
        std::cout << result.value("jwk", nlohmann::json::object()).dump(2) << "\n";
    } else if (req.cmd == "cert") {
        std::cout << result.value("pem", "");
    } else if (req.cmd == "metrics") {
        std::cout << result.value("text", "");
    } else {
        std::cout << mtls::ctl::render_steps(result);
    }
    return req.cmd == "status" ? mtls::ctl::status_exit_code(result) : kOk;
}
