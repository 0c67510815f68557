// Test helpers for driving programs as child processes, reused by the integration tests:
//   - run_command / run_shell: run a program (or a bash script) with a deadline, capturing
//     stdout and stderr;
//   - ChildProcess: a long-running child whose output goes to a log file, stopped with
//     SIGTERM (SIGKILL after a grace period) by stop() or the destructor;
//   - wait_for_json_file: poll (never sleep-and-hope) for a file a child writes;
//   - TempDir: see tests/support/temp_dir.hpp;
//   - SandboxProcess: tests/sandbox's partner-sandbox started in a directory, with its
//     --info-file parsed (ports, URLs, CA files).
#pragma once

#include <sys/types.h>

#include <nlohmann/json.hpp>
#include "tests/support/temp_dir.hpp"

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace mtls::test {

using namespace std::chrono_literals;

struct CommandResult {
    int exit_code = -1;  // exit status, or 128 + signal when killed (e.g. on timeout)
    bool timed_out = false;
    std::string out, err;
};

// Runs argv[0] (searched in PATH) without a shell. `input` is written to its stdin.
CommandResult run_command(const std::vector<std::string>& argv, const std::string& input = "",
                          std::chrono::milliseconds timeout = 60s,
                          const std::map<std::string, std::string>& env = {});

// Runs `bash -c 'set -euo pipefail; <script>'` with the extra environment variables.
CommandResult run_shell(const std::string& script,
                        const std::map<std::string, std::string>& env = {},
                        std::chrono::milliseconds timeout = 60s);

class ChildProcess {
  public:
    // Starts argv; stdout and stderr are appended to `log_file`; stdin is /dev/null.
    ChildProcess(const std::vector<std::string>& argv, const std::filesystem::path& log_file,
                 const std::map<std::string, std::string>& env = {});
    ~ChildProcess();  // stop() if still running
    ChildProcess(const ChildProcess&) = delete;
    ChildProcess& operator=(const ChildProcess&) = delete;

    pid_t pid() const { return pid_; }
    // True while the child has not exited (reaps it if it has).
    bool running();
    // The exit status once exited (128 + signal if killed), waiting up to `timeout`.
    std::optional<int> wait_exit(std::chrono::milliseconds timeout);
    // SIGTERM, wait up to `grace`, then SIGKILL. Returns the exit status (see wait_exit).
    int stop(std::chrono::milliseconds grace = 5s);
    std::string log() const;
    const std::filesystem::path& log_file() const { return log_; }

  private:
    pid_t pid_ = -1;
    std::optional<int> status_;
    std::filesystem::path log_;
};

// Polls every few milliseconds until `path` exists and holds valid JSON; throws
// std::runtime_error (with the child's log, if given) on the deadline or if `child` exits.
nlohmann::json wait_for_json_file(const std::filesystem::path& path,
                                  std::chrono::milliseconds deadline,
                                  ChildProcess* child = nullptr);

// partner-sandbox as a child process. The info JSON (see tests/sandbox/main.cpp) has:
//   ca.{dir,root,issuing,bundle}, est.{port,url,…}, as.{port,issuer,metadata,
//   token_endpoint,mtls_token_endpoint,introspection_endpoint,jwks_uri}, api.{port,url,data,
//   echo}, admin.{stats,mode,requests}.
class SandboxProcess {
  public:
    // $MTLS_PARTNER_SANDBOX if set, else the one this build's tests run: built in this tree,
    // or by the preset MTLS_SANDBOX_PRESET names (tests/CMakeLists.txt).
    static std::filesystem::path default_binary();

    // Starts it with --ca-dir <dir>/ca --info-file <dir>/sandbox-info.json plus `args`,
    // and waits (up to `ready_deadline`) for the info file.
    explicit SandboxProcess(const std::filesystem::path& dir, std::vector<std::string> args = {},
                            std::chrono::milliseconds ready_deadline = 10s,
                            const std::filesystem::path& binary = default_binary());

    const nlohmann::json& info() const { return info_; }
    std::uint16_t est_port() const { return info_["est"]["port"].get<std::uint16_t>(); }
    std::uint16_t as_port() const { return info_["as"]["port"].get<std::uint16_t>(); }
    std::uint16_t api_port() const { return info_["api"]["port"].get<std::uint16_t>(); }
    std::string ca_bundle() const { return info_["ca"]["bundle"].get<std::string>(); }
    std::string est_url() const { return info_["est"]["url"].get<std::string>(); }
    std::string as_issuer() const { return info_["as"]["issuer"].get<std::string>(); }
    std::string api_url() const { return info_["api"]["url"].get<std::string>(); }
    // Time from spawn until the info file was readable.
    std::chrono::milliseconds startup_time() const { return startup_; }

    // GET /sandbox/stats (with curl).
    nlohmann::json stats() const;
    // API requests the partner received with the client certificate of this x5t#S256
    // (stats' api_requests_by_cert).
    std::uint64_t api_requests_with_cert(const std::string& x5t) const;
    // POST /sandbox/mode?<query> (with curl); throws on a non-200 answer.
    void set_mode(const std::string& query) const;

    int stop(std::chrono::milliseconds grace = 5s) { return child_.stop(grace); }
    ChildProcess& process() { return child_; }

  private:
    std::filesystem::path info_path_;
    ChildProcess child_;
    nlohmann::json info_;
    std::chrono::milliseconds startup_{0};
};

}  // namespace mtls::test
