// mtls-agentctl's side of the admin socket: connect, send one request line, read one
// response line, with a timeout on every step.
#pragma once

#include "agent/admin/protocol.hpp"

#include <chrono>
#include <stdexcept>
#include <string>

namespace mtls::ctl {

// The agent could not be reached (no socket, connection refused, timeout): exit code 3.
class Unreachable : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

// The agent's socket refuses this caller (connect() said EACCES/EPERM): exit code 4.
class Refused : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

// What to tell a refused caller: "refused: <socket>: only root, the agent's user and members
// of group <G> may use the admin socket (usermod -aG <G> <user>, then log in again)", the
// group being the socket file's (or "the admin group" when it cannot be read).
std::string refusal_message(const std::string& socket_path);

// Sends `req` and returns the parsed response object ({"v","ok","result"|"error"}). Throws
// Unreachable or Refused.
nlohmann::json call(const std::string& socket_path, const admin::Request& req,
                    std::chrono::milliseconds timeout);

}  // namespace mtls::ctl
