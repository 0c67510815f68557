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

// Sends `req` and returns the parsed response object ({"v","ok","result"|"error"}).
nlohmann::json call(const std::string& socket_path, const admin::Request& req,
                    std::chrono::milliseconds timeout);

}  // namespace mtls::ctl
