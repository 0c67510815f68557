// Runs the [renewal] on_renew command: an argv without a shell, with only the environment it
// is given, stdin from /dev/null, stdout and stderr captured together (bounded), the working
// directory "/", every descriptor but 0-2 closed, default signal dispositions and an empty
// signal mask, in a process group of its own. Past `timeout` the whole group gets SIGTERM,
// and SIGKILL `kill_grace` later. Blocking: call it from a thread of your own.
#pragma once

#include <chrono>
#include <cstddef>
#include <stop_token>
#include <string>
#include <vector>

namespace mtls::certexport {

struct HookCommand {
    std::vector<std::string> argv;  // argv[0]: the program's absolute path
    std::vector<std::string> env;   // "NAME=value", the whole environment
    std::chrono::milliseconds timeout{30000};
    std::chrono::milliseconds kill_grace{5000};  // between SIGTERM and SIGKILL
    std::size_t max_output = 16384;              // bytes kept; the rest is read and dropped
};

struct HookResult {
    enum class End {
        exited,        // exit_code holds the status
        signaled,      // killed by `signal` (not ours)
        timed_out,     // ran past the timeout and was killed by us
        stopped,       // the caller asked to stop (agent stopping) and it was killed by us
        cannot_start,  // posix_spawn failed: `error`
    };
    End end = End::cannot_start;
    int exit_code = -1;
    int signal = 0;
    std::string error;
    std::string output;  // stdout and stderr as written, at most max_output bytes
    std::size_t output_dropped = 0;
    std::chrono::milliseconds elapsed{0};

    bool ok() const { return end == End::exited && exit_code == 0; }
    // "exit status 0", "exit status 3", "killed by signal 9 (Killed)", "timed out after 30s
    // (process group killed)", "cannot start /x: No such file or directory", …
    std::string describe() const;
    // "ok", "failed", "timed_out", "cannot_start", "stopped" (for status and metrics).
    const char* result_name() const;
};

// Never throws for a failing command; std::bad_alloc aside, every problem is in the result.
// `stop`: when requested, the command is ended as at a timeout.
HookResult run_hook(const HookCommand& cmd, std::stop_token stop = {});

// The output as lines (a last line without '\n' included; "\r\n" trimmed), at most
// `max_lines` of at most `max_line` bytes each.
std::vector<std::string> output_lines(const std::string& output, std::size_t max_lines = 100,
                                      std::size_t max_line = 1000);

}  // namespace mtls::certexport
