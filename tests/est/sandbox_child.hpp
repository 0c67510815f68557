// Runs tests/sandbox/partner-sandbox as a child process in a private temporary directory,
// waits (polling with a deadline) for its --info-file, and stops it on destruction.
// (A local helper until tests/support/sandbox_process lands on main.)
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace mtls::est::testing {

class SandboxChild {
  public:
    // `extra` flags are appended to --ca-dir/--info-file/--est-credentials/--log-level.
    explicit SandboxChild(std::vector<std::string> extra = {});
    ~SandboxChild();
    SandboxChild(const SandboxChild&) = delete;
    SandboxChild& operator=(const SandboxChild&) = delete;

    const nlohmann::json& info() const { return info_; }
    std::string est_base() const;  // "https://127.0.0.1:PORT"
    std::string root_ca_file() const { return info_["ca"]["root"]; }
    std::string server_cert_file() const { return info_["server_cert"]; }
    const std::filesystem::path& dir() const { return dir_; }
    std::filesystem::path credentials_file() const { return dir_ / "est-basic"; }

  private:
    std::filesystem::path dir_;
    pid_t pid_ = -1;
    nlohmann::json info_;
};

// A fresh private directory under the build tree.
std::filesystem::path make_temp_dir(const std::string& prefix);

}  // namespace mtls::est::testing
