#include "agent/export/hook_runner.hpp"

#include "config/duration.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace mtls::certexport {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

struct HookFd {
    int fd = -1;
    HookFd() = default;
    explicit HookFd(int f) : fd(f) {}
    HookFd(const HookFd&) = delete;
    HookFd& operator=(const HookFd&) = delete;
    ~HookFd() { reset(); }
    void reset() {
        if (fd >= 0) ::close(fd);
        fd = -1;
    }
};

struct SpawnSetup {
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    SpawnSetup() {
        posix_spawn_file_actions_init(&actions);
        posix_spawnattr_init(&attr);
    }
    ~SpawnSetup() {
        posix_spawn_file_actions_destroy(&actions);
        posix_spawnattr_destroy(&attr);
    }
    SpawnSetup(const SpawnSetup&) = delete;
    SpawnSetup& operator=(const SpawnSetup&) = delete;
};

// What a child gets: stdin /dev/null, stdout and stderr the pipe, nothing else open, "/" as
// working directory, its own process group, default signals, nothing blocked. Returns an
// errno value (0: ok).
int prepare(SpawnSetup& s, int out_fd) {
    int rc = 0;
    auto step = [&rc](int r) {
        if (rc == 0) rc = r;
    };
    step(posix_spawn_file_actions_addopen(&s.actions, 0, "/dev/null", O_RDONLY, 0));
    step(posix_spawn_file_actions_adddup2(&s.actions, out_fd, 1));
    step(posix_spawn_file_actions_adddup2(&s.actions, out_fd, 2));
    step(posix_spawn_file_actions_addclosefrom_np(&s.actions, 3));
    step(posix_spawn_file_actions_addchdir_np(&s.actions, "/"));
    step(posix_spawnattr_setflags(
        &s.attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF));
    step(posix_spawnattr_setpgroup(&s.attr, 0));
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    step(posix_spawnattr_setsigmask(&s.attr, &none));
    step(posix_spawnattr_setsigdefault(&s.attr, &all));
    return rc;
}

std::vector<char*> c_strings(const std::vector<std::string>& v) {
    std::vector<char*> out;
    out.reserve(v.size() + 1);
    for (const auto& s : v) out.push_back(const_cast<char*>(s.c_str()));
    out.push_back(nullptr);
    return out;
}

// Reads what the pipe holds now (non-blocking). False at end of file (or an error).
bool read_available(int fd, const HookCommand& cmd, HookResult& r) {
    char buf[4096];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n > 0) {
            std::size_t keep = std::min<std::size_t>(static_cast<std::size_t>(n),
                                                     cmd.max_output - r.output.size());
            r.output.append(buf, keep);
            r.output_dropped += static_cast<std::size_t>(n) - keep;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
        return false;
    }
}

}  // namespace

HookResult run_hook(const HookCommand& cmd, std::stop_token stop) {
    HookResult r;
    const auto started = Clock::now();
    if (cmd.argv.empty() || cmd.argv.front().empty()) {
        r.error = "no command to run";
        return r;
    }
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) {
        r.error = std::string("cannot create a pipe: ") + std::strerror(errno);
        return r;
    }
    HookFd out_read(p[0]), out_write(p[1]);
    SpawnSetup setup;
    if (int e = prepare(setup, out_write.fd); e != 0) {
        r.error = std::string("cannot prepare the command: ") + std::strerror(e);
        return r;
    }
    auto argv = c_strings(cmd.argv);
    auto envp = c_strings(cmd.env);
    pid_t pid = -1;
    if (int e = posix_spawn(&pid, argv[0], &setup.actions, &setup.attr, argv.data(), envp.data());
        e != 0) {
        r.error = "cannot start " + cmd.argv.front() + ": " + std::strerror(e);
        r.elapsed = std::chrono::duration_cast<milliseconds>(Clock::now() - started);
        return r;
    }
    out_write.reset();  // the child's copy is the only writer left
    ::fcntl(out_read.fd, F_SETFL, ::fcntl(out_read.fd, F_GETFL) | O_NONBLOCK);
    // Readable when the child has exited (Linux 5.3); without it, exits are noticed on ticks.
    // (glibc 2.36's <sys/pidfd.h> lacks extern "C": the system call directly.)
    HookFd exited_fd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));

    enum class Phase { running, terminating, killed } phase = Phase::running;
    const auto deadline = started + cmd.timeout;
    auto kill_at = Clock::time_point::max();
    bool reading = true;
    for (;;) {
        // Exited? Looked at without reaping, so the process group cannot be reused while we
        // may still signal it.
        siginfo_t info{};
        int w = ::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT);
        if ((w == 0 && info.si_pid == pid) || (w < 0 && errno == ECHILD)) break;
        const auto now = Clock::now();
        if (phase == Phase::running && (now >= deadline || stop.stop_requested())) {
            r.end = now >= deadline ? HookResult::End::timed_out : HookResult::End::stopped;
            ::kill(-pid, SIGTERM);
            phase = Phase::terminating;
            kill_at = now + cmd.kill_grace;
        } else if (phase == Phase::terminating && now >= kill_at) {
            ::kill(-pid, SIGKILL);
            phase = Phase::killed;
        }
        auto next = phase == Phase::running       ? deadline
                    : phase == Phase::terminating ? kill_at
                                                  : now + milliseconds(100);
        auto wait = std::chrono::duration_cast<milliseconds>(next - now) + milliseconds(1);
        wait = std::min(wait, milliseconds(exited_fd.fd >= 0 ? 100 : 10));
        pollfd fds[2] = {{reading ? out_read.fd : -1, POLLIN, 0}, {exited_fd.fd, POLLIN, 0}};
        int n = ::poll(fds, 2, static_cast<int>(wait.count()));
        if (n > 0 && reading && (fds[0].revents & (POLLIN | POLLHUP | POLLERR)))
            reading = read_available(out_read.fd, cmd, r);
    }
    // What it wrote before exiting; a descendant still holding the pipe is not waited for.
    if (reading) read_available(out_read.fd, cmd, r);
    // Stragglers of a command we ended go with it.
    if (phase != Phase::running) ::kill(-pid, SIGKILL);
    int status = 0;
    int reaped = -1;
    while ((reaped = ::waitpid(pid, &status, 0)) < 0 && errno == EINTR) {
    }
    r.elapsed = std::chrono::duration_cast<milliseconds>(Clock::now() - started);
    if (phase != Phase::running) {
        r.error = r.end == HookResult::End::timed_out
                      ? "ran longer than on_renew_timeout (" +
                            config::format_duration(cmd.timeout) + ") and was killed (SIGTERM" +
                            (phase == Phase::killed ? ", then SIGKILL)" : ")")
                      : std::string("ended because the agent is stopping");
    } else if (reaped != pid) {  // e.g. SIGCHLD ignored: the kernel reaped it
        r.end = HookResult::End::signaled;
    } else if (WIFEXITED(status)) {
        r.end = HookResult::End::exited;
        r.exit_code = WEXITSTATUS(status);
    } else {
        r.end = HookResult::End::signaled;
        r.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    }
    return r;
}

std::string HookResult::describe() const {
    switch (end) {
        case End::exited:
            return "exit status " + std::to_string(exit_code);
        case End::signaled: {
            if (signal == 0) return "ended, exit status unknown";
            const char* name = ::sigabbrev_np(signal);
            return "killed by signal " + std::to_string(signal) +
                   (name ? std::string(" (SIG") + name + ")" : std::string());
        }
        default:
            return error;
    }
}

const char* HookResult::result_name() const {
    switch (end) {
        case End::exited:
            return exit_code == 0 ? "ok" : "failed";
        case End::signaled:
            return "failed";
        case End::timed_out:
            return "timed_out";
        case End::stopped:
            return "stopped";
        case End::cannot_start:
            return "cannot_start";
    }
    return "failed";
}

std::vector<std::string> output_lines(const std::string& output, std::size_t max_lines,
                                      std::size_t max_line) {
    std::vector<std::string> lines;
    std::size_t at = 0;
    while (at < output.size() && lines.size() < max_lines) {
        std::size_t end = output.find('\n', at);
        if (end == std::string::npos) end = output.size();
        std::string line = output.substr(at, end - at);
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.size() > max_line) line.resize(max_line);
        lines.push_back(std::move(line));
        at = end + 1;
    }
    return lines;
}

}  // namespace mtls::certexport
