// Test helper: run a program (no shell), capture its stdout and stderr, wait for it with a
// deadline. Secrets never go on the command line: pass them through files or `env`.
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace mtls::test {

struct RunResult {
    int exit_code = -1;      // the exit status, or 128 + signal when killed by one
    bool timed_out = false;  // killed (SIGKILL) because the deadline passed
    std::string out;         // everything written to stdout
    std::string err;         // everything written to stderr
};

// argv[0] is the program path (searched in PATH when it has no '/'). `env` entries
// "NAME=value" are added to (or replace in) this process's environment for the child.
RunResult run(const std::vector<std::string>& argv, const std::vector<std::string>& env = {},
              std::chrono::milliseconds timeout = std::chrono::seconds(60));

}  // namespace mtls::test
