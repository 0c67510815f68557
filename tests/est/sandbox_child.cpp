#include "tests/est/sandbox_child.hpp"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <thread>

#include "common/atomic_file.hpp"

namespace mtls::est::testing {

std::filesystem::path make_temp_dir(const std::string& prefix) {
    std::string tmpl = (std::filesystem::path(MTLS_BINARY_DIR) / "tmp").string();
    std::filesystem::create_directories(tmpl);
    tmpl += "/" + prefix + "-XXXXXX";
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp " + tmpl + " failed");
    return tmpl;
}

SandboxChild::SandboxChild(std::vector<std::string> extra) {
    dir_ = make_temp_dir("est-sandbox");
    files::write_atomic(dir_ / "est-basic", "agent-17:s3cret-pass\n", 0600);
    // MTLS_PARTNER_SANDBOX overrides the path (a sandbox built elsewhere).
    const char* override_exe = std::getenv("MTLS_PARTNER_SANDBOX");
    const std::string exe =
        override_exe && *override_exe
            ? std::string(override_exe)
            : (std::filesystem::path(MTLS_BINARY_DIR) / "tests/sandbox/partner-sandbox").string();
    std::vector<std::string> args = {exe,
                                     "--ca-dir",
                                     (dir_ / "ca").string(),
                                     "--info-file",
                                     (dir_ / "info.json").string(),
                                     "--est-credentials",
                                     (dir_ / "est-basic").string(),
                                     "--log-level",
                                     "warning"};
    args.insert(args.end(), extra.begin(), extra.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_ = fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
        execv(exe.c_str(), argv.data());
        _exit(127);
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    const auto info_path = dir_ / "info.json";
    while (true) {
        int status = 0;
        if (waitpid(pid_, &status, WNOHANG) == pid_) {
            pid_ = -1;
            throw std::runtime_error("partner-sandbox exited early (status " +
                                     std::to_string(status) + "); is it built? " + exe);
        }
        if (std::filesystem::exists(info_path)) {
            info_ = nlohmann::json::parse(files::read_all(info_path));
            return;
        }
        if (std::chrono::steady_clock::now() > deadline) {
            kill(pid_, SIGKILL);
            waitpid(pid_, nullptr, 0);
            pid_ = -1;
            throw std::runtime_error("partner-sandbox did not write its info file in 20 s");
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));  // polling, with a deadline
    }
}

SandboxChild::~SandboxChild() {
    if (pid_ > 0) {
        kill(pid_, SIGTERM);
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
        int status = 0;
        while (waitpid(pid_, &status, WNOHANG) == 0) {
            if (std::chrono::steady_clock::now() > deadline) {
                kill(pid_, SIGKILL);
                waitpid(pid_, &status, 0);
                break;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
    }
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
}

std::string SandboxChild::est_base() const {
    return "https://127.0.0.1:" + std::to_string(info_["est"]["port"].get<int>());
}

}  // namespace mtls::est::testing
