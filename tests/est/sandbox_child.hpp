// The partner sandbox for the EST tests: tests/support's SandboxProcess in a private
// temporary directory, with an HTTP Basic credentials file for simpleenroll.
#pragma once

#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/support/sandbox_process.hpp"

namespace mtls::est::testing {

class SandboxChild {
public:
    // `extra` flags are appended to --est-credentials <dir>/est-basic --log-level warning.
    explicit SandboxChild(std::vector<std::string> extra = {});

    const nlohmann::json& info() const { return process_->info(); }
    std::string est_base() const;  // "https://127.0.0.1:PORT"
    std::string root_ca_file() const { return info()["ca"]["root"]; }
    std::string server_cert_file() const { return info()["server_cert"]; }
    const std::filesystem::path& dir() const { return dir_.path(); }
    std::filesystem::path credentials_file() const { return dir_ / "est-basic"; }

private:
    test::TempDir dir_{"est-sandbox"};
    std::unique_ptr<test::SandboxProcess> process_;
};

}  // namespace mtls::est::testing
