#include "agent/token/remote_text.hpp"

#include <algorithm>
#include <array>

namespace mtls::token {

std::string sanitize_remote_text(std::string_view text, std::size_t max) {
    std::string out;
    out.reserve(std::min(text.size(), max) + 3);
    for (char c : text) {
        if (out.size() >= max) {
            out += "...";
            break;
        }
        auto u = static_cast<unsigned char>(c);
        out += (u >= 0x20 && u < 0x7f) ? c : '?';
    }
    return out;
}

bool is_standard_oauth_error(std::string_view code) {
    static constexpr std::array<std::string_view, 7> codes = {
        "invalid_request",        "invalid_client", "invalid_grant", "unauthorized_client",
        "unsupported_grant_type", "invalid_scope",  "invalid_target"};
    for (auto c : codes)
        if (c == code) return true;
    return false;
}

}  // namespace mtls::token
