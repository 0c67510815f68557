// Human-readable rendering of admin responses for mtls-agentctl (the --json flag prints the
// raw result instead). The status schema is documented in docs/admin-protocol.md.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace mtls::ctl {

std::string render_status(const nlohmann::json& status);
std::string render_steps(const nlohmann::json& result);  // rotate / renew / reload
// Exit code for a status result: 0 healthy, 1 degraded, 2 failing.
int status_exit_code(const nlohmann::json& status);

}  // namespace mtls::ctl
