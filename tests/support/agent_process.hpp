// Test helper: the real mtls-agent binary as a child process, configured against a
// partner-sandbox (tests/support/sandbox_process.hpp) and a throwaway SoftHSM2 token
// (tests/support/softhsm_token.hpp), driven with the real mtls-agentctl.
//
//   AgentProcess agent(dir.path(), token, sandbox);   // writes <dir>/mtls-agent.toml
//   agent.start();
//   auto status = agent.wait_healthy();               // polls `mtls-agentctl status`
//   auto r = agent.ctl({"rotate", "--wait"});
//   agent.kill9(); agent.start();                      // crash and restart
//
// The proxy listens on a free loopback port with one route, "partner" (/partner/ -> the
// sandbox API, token profile "partner"). The PIN stays in the token's PIN file.
#pragma once

#include "tests/support/sandbox_process.hpp"
#include "tests/support/softhsm_token.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace mtls::test {

struct AgentSetup {
    std::string key_type = "ec-p256";
    // Extra lines inside [renewal] (e.g. "at_fraction = 0.5\nbackoff_initial = \"1s\"").
    std::string renewal;
    // Extra lines inside [key] (e.g. "retire_grace = \"2s\"").
    std::string key;
    // The [est] authentication lines; unset: basic_credentials = "<dir>/est-basic" (auth
    // "basic"). "{credentials}" in it stands for that file's path as a TOML string, e.g.
    // "auth = \"digest\"\nbasic_credentials = {credentials}".
    std::optional<std::string> est_auth;
    // Extra lines inside [est] (e.g. "proof_of_possession = true").
    std::string est;
    // Extra lines inside [admin] (e.g. "allowed_uids = [65534]").
    std::string admin;
    // Extra lines inside [listener] (e.g. "max_connections = 10").
    std::string listener;
    // What the agent is started through, before its own argv (e.g. {"prlimit",
    // "--nofile=128:128"} to lower its descriptor limit).
    std::vector<std::string> launcher;
    // Appended to the end of the file (more routes, [metrics], …).
    std::string extra;
    // Whether the route asks for an access token (profile "partner").
    bool use_token = true;
    // Extra lines inside the "partner" [[routes]] entry (e.g. "revocation = \"hard-fail\"";
    // may end with a [routes.timeouts] table).
    std::string route;
    // Extra lines inside the "partner" [[oauth.profiles]] entry.
    std::string oauth_profile;
    // Another mtls-agent binary than the build tree's (e.g. the installed /usr/bin/mtls-agent).
    std::filesystem::path binary;
    // The PIN source line in [pkcs11]; unset: pin_file = the token's PIN file (e.g.
    // "pin_credential = \"token-pin\"").
    std::optional<std::string> pin;
    // AgentWorld makes a tpm2-pkcs11 token on a software TPM (TempToken::create_tpm) instead
    // of a SoftHSM2 one; the agent gets the module's environment (TempToken::env) either way.
    bool tpm = false;
};

class AgentProcess {
  public:
    static std::filesystem::path agent_binary();
    static std::filesystem::path ctl_binary();
    // Writes the EST Basic credentials (<dir>/est-basic, 0600) and returns the sandbox flags
    // that accept them: start the SandboxProcess with these and the same `dir`.
    static std::vector<std::string> sandbox_args(const std::filesystem::path& dir);

    // Writes the configuration into `dir` (state in <dir>/state, socket <dir>/admin.sock).
    AgentProcess(std::filesystem::path dir, const TempToken& token, const SandboxProcess& sandbox,
                 AgentSetup setup = {});
    ~AgentProcess();
    AgentProcess(const AgentProcess&) = delete;
    AgentProcess& operator=(const AgentProcess&) = delete;

    // The configuration as written; write_config() replaces it atomically (for reload).
    const std::string& config_text() const { return config_; }
    void write_config(const std::string& text);

    // Starts the agent (it must not be running). `env` is added to its environment.
    void start(const std::map<std::string, std::string>& env = {});
    // Polls `mtls-agentctl status --json` until the state is "healthy" (returns the status),
    // or throws std::runtime_error with the agent's log when the deadline passes or it exits.
    nlohmann::json wait_healthy(std::chrono::milliseconds deadline = std::chrono::seconds(60));
    // Polls until `pred(status)` holds; same failure behaviour as wait_healthy.
    template <class Pred>
    nlohmann::json wait_status(Pred pred, std::chrono::milliseconds deadline,
                               const std::string& what);

    // Runs mtls-agentctl --socket <ours> <args...>.
    CommandResult ctl(const std::vector<std::string>& args,
                      std::chrono::milliseconds timeout = std::chrono::seconds(60)) const;
    // `status --json`, parsed; nullopt when the agent cannot be reached.
    std::optional<nlohmann::json> status() const;

    bool running();
    // The running agent's process id (-1 when not started).
    pid_t pid() const { return child_ ? child_->pid() : -1; }
    // The exit status once it exited on its own (e.g. after a crash point), or nullopt.
    std::optional<int> wait_exit(std::chrono::milliseconds timeout);
    int kill9();  // SIGKILL; returns the exit status (128 + 9)
    int stop();   // SIGTERM, then SIGKILL after a grace period
    std::string log() const;
    // The log without its proxy.request lines: what the agent did besides the traffic (for
    // a failure message under load, where the requests would bury it).
    std::string events() const;

    std::uint16_t port() const { return port_; }
    // http://127.0.0.1:<port>/partner/<path>
    std::string url(const std::string& path) const;
    const std::filesystem::path& dir() const { return dir_; }
    std::filesystem::path config_path() const { return dir_ / "mtls-agent.toml"; }
    std::filesystem::path state_file() const { return dir_ / "state" / "identity.json"; }
    std::filesystem::path socket_path() const { return dir_ / "admin.sock"; }

  private:
    std::string render(const SandboxProcess& sandbox) const;
    nlohmann::json wait_for(const std::function<bool(const nlohmann::json&)>& pred,
                            std::chrono::milliseconds deadline, const std::string& what);

    std::filesystem::path dir_;
    const TempToken& token_;
    AgentSetup setup_;
    std::uint16_t port_ = 0;
    std::string config_;
    std::unique_ptr<ChildProcess> child_;
    int starts_ = 0;
};

template <class Pred>
nlohmann::json AgentProcess::wait_status(Pred pred, std::chrono::milliseconds deadline,
                                         const std::string& what) {
    return wait_for(std::function<bool(const nlohmann::json&)>(pred), deadline, what);
}

// A free TCP port on 127.0.0.1 (bound and released; the caller binds it soon after), below
// the range the kernel hands out to outgoing connections when it can.
std::uint16_t free_loopback_port();

// The private keys on the token whose label starts with `label_prefix`: CKA_ID as
// lower-case hex (logs in with the token's PIN file; read-only session).
std::vector<std::string> token_key_ids(const TempToken& token,
                                       const std::string& label_prefix = "mtls-agent");

}  // namespace mtls::test
