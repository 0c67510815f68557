#include "agent/admin/protocol.hpp"

#include <set>
#include <vector>

namespace mtls::admin {

Request parse_request(std::string_view line) {
    if (line.size() > kMaxRequestBytes)
        throw CommandError("bad_request",
                           "request larger than " + std::to_string(kMaxRequestBytes) + " bytes");
    // A duplicate key would otherwise be settled silently by the last one (RFC 8259 §4 leaves
    // it undefined): refuse it.
    std::vector<std::set<std::string>> keys;
    std::string duplicate;
    auto check = [&](int, nlohmann::json::parse_event_t ev, nlohmann::json& parsed) {
        using E = nlohmann::json::parse_event_t;
        if (ev == E::object_start) keys.emplace_back();
        if (ev == E::object_end && !keys.empty()) keys.pop_back();
        if (ev == E::key && !keys.empty() && parsed.is_string() &&
            !keys.back().insert(parsed.get<std::string>()).second && duplicate.empty())
            duplicate = parsed.get<std::string>();
        return true;
    };
    nlohmann::json j = nlohmann::json::parse(line, check, /*allow_exceptions=*/false);
    if (j.is_discarded())
        throw CommandError("bad_request", "request is not valid JSON (one object per line)");
    if (!duplicate.empty())
        throw CommandError("bad_request", "duplicate key \"" + duplicate + "\" in request");
    if (!j.is_object()) throw CommandError("bad_request", "request must be a JSON object");
    auto v = j.find("v");
    if (v == j.end() || !v->is_number_integer())
        throw CommandError("bad_request",
                           "request needs \"v\": " + std::to_string(kProtocolVersion));
    if (v->get<long long>() != kProtocolVersion)
        throw CommandError("unsupported_version", "protocol version " + v->dump() +
                                                      " is not supported (this agent speaks " +
                                                      std::to_string(kProtocolVersion) + ")");
    auto cmd = j.find("cmd");
    if (cmd == j.end() || !cmd->is_string() || cmd->get_ref<const std::string&>().empty())
        throw CommandError("bad_request", "request needs \"cmd\": a command name");
    Request r;
    r.cmd = cmd->get<std::string>();
    if (auto a = j.find("args"); a != j.end()) {
        if (!a->is_object()) throw CommandError("bad_request", "\"args\" must be an object");
        r.args = *a;
    }
    for (auto it = j.begin(); it != j.end(); ++it) {
        if (it.key() != "v" && it.key() != "cmd" && it.key() != "args")
            throw CommandError("bad_request", "unknown field \"" + it.key() + "\" in request");
    }
    return r;
}

namespace {
std::string line_of(const nlohmann::json& j) {
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}
}  // namespace

std::string request_line(const Request& r) {
    return line_of({{"v", kProtocolVersion}, {"cmd", r.cmd}, {"args", r.args}});
}

std::string ok_line(const nlohmann::json& result) {
    return line_of({{"v", kProtocolVersion}, {"ok", true}, {"result", result}});
}

std::string error_line(std::string_view code, std::string_view message) {
    return line_of({{"v", kProtocolVersion},
                    {"ok", false},
                    {"error", {{"code", std::string(code)}, {"message", std::string(message)}}}});
}

}  // namespace mtls::admin
