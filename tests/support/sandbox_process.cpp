#include "tests/support/sandbox_process.hpp"

#include "common/atomic_file.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <system_error>
#include <thread>

namespace mtls::test {
namespace {

using Clock = std::chrono::steady_clock;

int decode_status(int status) {
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return -1;
}

std::vector<char*> c_argv(std::vector<std::string>& args) {
    std::vector<char*> out;
    for (auto& a : args) out.push_back(a.data());
    out.push_back(nullptr);
    return out;
}

// In the child, after fork: apply env and exec; never returns.
[[noreturn]] void exec_child(std::vector<std::string> argv,
                             const std::map<std::string, std::string>& env) {
    for (auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
    auto args = c_argv(argv);
    ::execvp(args[0], args.data());
    std::string msg = "exec " + argv[0] + " failed: " + std::strerror(errno) + "\n";
    (void)!::write(2, msg.data(), msg.size());
    ::_exit(127);
}

void set_nonblock(int fd) {
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
}

}  // namespace

CommandResult run_command(const std::vector<std::string>& argv, const std::string& input,
                          std::chrono::milliseconds timeout,
                          const std::map<std::string, std::string>& env) {
    int in[2], out[2], err[2];
    if (::pipe2(in, O_CLOEXEC) || ::pipe2(out, O_CLOEXEC) || ::pipe2(err, O_CLOEXEC))
        throw std::system_error(errno, std::generic_category(), "pipe");
    pid_t pid = ::fork();
    if (pid < 0) throw std::system_error(errno, std::generic_category(), "fork");
    if (pid == 0) {
        ::dup2(in[0], 0);
        ::dup2(out[1], 1);
        ::dup2(err[1], 2);
        exec_child(argv, env);
    }
    ::close(in[0]);
    ::close(out[1]);
    ::close(err[1]);
    set_nonblock(in[1]);
    set_nonblock(out[0]);
    set_nonblock(err[0]);
    CommandResult r;
    size_t written = 0;
    int fd_in = in[1];
    if (input.empty()) {
        ::close(fd_in);
        fd_in = -1;
    }
    int fd_out = out[0], fd_err = err[0];
    auto deadline = Clock::now() + timeout;
    while (fd_out >= 0 || fd_err >= 0) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
        if (left.count() <= 0) {
            r.timed_out = true;
            ::kill(pid, SIGKILL);
            break;
        }
        pollfd fds[3] = {{fd_out, POLLIN, 0}, {fd_err, POLLIN, 0}, {fd_in, POLLOUT, 0}};
        int n = ::poll(fds, 3, static_cast<int>(std::min<long>(left.count(), 1000)));
        if (n < 0 && errno != EINTR) break;
        char buf[65536];
        for (int i = 0; i < 2; ++i) {
            int& fd = i == 0 ? fd_out : fd_err;
            if (fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            ssize_t got = ::read(fd, buf, sizeof buf);
            if (got > 0)
                (i == 0 ? r.out : r.err).append(buf, static_cast<size_t>(got));
            else if (got == 0 || (errno != EAGAIN && errno != EINTR)) {
                ::close(fd);
                fd = -1;
            }
        }
        if (fd_in >= 0 && (fds[2].revents & (POLLOUT | POLLERR | POLLHUP))) {
            ssize_t w = ::write(fd_in, input.data() + written, input.size() - written);
            if (w > 0) written += static_cast<size_t>(w);
            if (w < 0 && errno != EAGAIN && errno != EINTR) written = input.size();
            if (written >= input.size()) {
                ::close(fd_in);
                fd_in = -1;
            }
        }
    }
    for (int fd : {fd_in, fd_out, fd_err})
        if (fd >= 0) ::close(fd);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    r.exit_code = decode_status(status);
    return r;
}

CommandResult run_shell(const std::string& script, const std::map<std::string, std::string>& env,
                        std::chrono::milliseconds timeout) {
    return run_command({"bash", "-c", "set -euo pipefail\n" + script}, "", timeout, env);
}

ChildProcess::ChildProcess(const std::vector<std::string>& argv,
                           const std::filesystem::path& log_file,
                           const std::map<std::string, std::string>& env)
    : log_(log_file) {
    int log_fd = ::open(log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (log_fd < 0)
        throw std::system_error(errno, std::generic_category(), "open " + log_file.string());
    pid_ = ::fork();
    if (pid_ < 0) {
        ::close(log_fd);
        throw std::system_error(errno, std::generic_category(), "fork");
    }
    if (pid_ == 0) {
        int null_fd = ::open("/dev/null", O_RDONLY);
        ::dup2(null_fd, 0);
        ::dup2(log_fd, 1);
        ::dup2(log_fd, 2);
        exec_child(argv, env);
    }
    ::close(log_fd);
}

ChildProcess::~ChildProcess() {
    if (pid_ > 0 && !status_) stop(3s);
}

bool ChildProcess::running() {
    if (status_) return false;
    int status = 0;
    pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
        status_ = decode_status(status);
        return false;
    }
    return true;
}

std::optional<int> ChildProcess::wait_exit(std::chrono::milliseconds timeout) {
    auto deadline = Clock::now() + timeout;
    while (running()) {
        if (Clock::now() >= deadline) return std::nullopt;
        std::this_thread::sleep_for(5ms);  // polling a child's exit, not readiness
    }
    return status_;
}

int ChildProcess::stop(std::chrono::milliseconds grace) {
    if (!running()) return *status_;
    ::kill(pid_, SIGTERM);
    if (auto s = wait_exit(grace)) return *s;
    ::kill(pid_, SIGKILL);
    return wait_exit(10s).value_or(-1);
}

std::string ChildProcess::log() const {
    std::ifstream in(log_);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

nlohmann::json wait_for_json_file(const std::filesystem::path& path,
                                  std::chrono::milliseconds deadline, ChildProcess* child) {
    auto end = Clock::now() + deadline;
    for (;;) {
        std::error_code ec;
        if (std::filesystem::exists(path, ec)) {
            try {
                auto j = nlohmann::json::parse(files::read_all(path), nullptr, false);
                if (!j.is_discarded()) return j;
            } catch (const std::exception&) {
            }
        }
        if (child && !child->running())
            throw std::runtime_error("child exited before writing " + path.string() +
                                     "; its output:\n" + child->log());
        if (Clock::now() >= end)
            throw std::runtime_error("timed out waiting for " + path.string() +
                                     (child ? "; child output:\n" + child->log() : ""));
        std::this_thread::sleep_for(5ms);
    }
}

std::filesystem::path SandboxProcess::default_binary() {
    // MTLS_PARTNER_SANDBOX names another binary; else this tree's, or with
    // MTLS_SANDBOX_PRESET the one that preset built (tests/CMakeLists.txt).
    if (const char* other = std::getenv("MTLS_PARTNER_SANDBOX"); other && *other) return other;
    return MTLS_PARTNER_SANDBOX_BIN;
}

namespace {
std::vector<std::string> sandbox_argv(const std::filesystem::path& binary,
                                      const std::filesystem::path& dir,
                                      std::vector<std::string> args) {
    std::vector<std::string> argv = {binary.string(), "--ca-dir", (dir / "ca").string(),
                                     "--info-file", (dir / "sandbox-info.json").string()};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
}
}  // namespace

SandboxProcess::SandboxProcess(const std::filesystem::path& dir, std::vector<std::string> args,
                               std::chrono::milliseconds ready_deadline,
                               const std::filesystem::path& binary)
    : info_path_(dir / "sandbox-info.json"),
      child_((std::filesystem::remove(dir / "sandbox-info.json"),
              sandbox_argv(binary, dir, std::move(args))),
             dir / "sandbox.log") {
    auto t0 = Clock::now();
    info_ = wait_for_json_file(info_path_, ready_deadline, &child_);
    startup_ = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0);
}

nlohmann::json SandboxProcess::stats() const {
    auto r = run_command({"curl", "-sS", "--fail", "--cacert", ca_bundle(),
                          info_["admin"]["stats"].get<std::string>()});
    if (r.exit_code != 0) throw std::runtime_error("GET /sandbox/stats failed: " + r.err);
    return nlohmann::json::parse(r.out);
}

std::uint64_t SandboxProcess::api_requests_with_cert(const std::string& x5t) const {
    const auto by = stats()["api_requests_by_cert"];
    return by.contains(x5t) ? by[x5t].get<std::uint64_t>() : 0;
}

void SandboxProcess::set_mode(const std::string& query) const {
    auto r = run_command({"curl", "-sS", "--fail-with-body", "--cacert", ca_bundle(), "-X", "POST",
                          info_["admin"]["mode"].get<std::string>() + "?" + query});
    if (r.exit_code != 0)
        throw std::runtime_error("POST /sandbox/mode?" + query + " failed: " + r.out + r.err);
}

}  // namespace mtls::test
