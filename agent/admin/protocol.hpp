// The admin socket's protocol (documented in docs/admin-protocol.md): JSON, one request and
// one response per line, versioned.
//   request:  {"v":1,"cmd":"status","args":{...}}
//   response: {"v":1,"ok":true,"result":{...}}
//             {"v":1,"ok":false,"error":{"code":"bad_request","message":"..."}}
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace mtls::admin {

inline constexpr int kProtocolVersion = 1;
inline constexpr std::size_t kMaxRequestBytes = 64 * 1024;

struct Request {
    std::string cmd;
    nlohmann::json args = nlohmann::json::object();
};

// A failure a command handler reports to the caller: a stable code and a human message.
class CommandError : public std::runtime_error {
  public:
    CommandError(std::string code, const std::string& message)
        : std::runtime_error(message), code_(std::move(code)) {}
    const std::string& code() const { return code_; }

  private:
    std::string code_;
};

// Parses one request line. Throws CommandError("bad_request" / "unsupported_version").
Request parse_request(std::string_view line);

std::string request_line(const Request& r);  // serialised, ends with '\n'
std::string ok_line(const nlohmann::json& result);
std::string error_line(std::string_view code, std::string_view message);

}  // namespace mtls::admin
