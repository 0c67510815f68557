#include "tests/sandbox/form.hpp"

namespace mtls::sandbox {
namespace {

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

}  // namespace

std::optional<std::string> url_decode(std::string_view in) {
    std::string out;
    out.reserve(in.size());
    for (std::size_t i = 0; i < in.size(); ++i) {
        char c = in[i];
        if (c == '+') {
            out += ' ';
        } else if (c == '%') {
            if (i + 2 >= in.size()) return std::nullopt;
            int hi = hex_value(in[i + 1]), lo = hex_value(in[i + 2]);
            if (hi < 0 || lo < 0) return std::nullopt;
            out += static_cast<char>(hi * 16 + lo);
            i += 2;
        } else {
            out += c;
        }
    }
    return out;
}

std::optional<Form> Form::parse(std::string_view text) {
    Form f;
    while (!text.empty()) {
        auto amp = text.find('&');
        auto part = text.substr(0, amp);
        text = amp == std::string_view::npos ? std::string_view{} : text.substr(amp + 1);
        if (part.empty()) continue;
        auto eq = part.find('=');
        auto name = url_decode(part.substr(0, eq));
        auto value =
            url_decode(eq == std::string_view::npos ? std::string_view{} : part.substr(eq + 1));
        if (!name || !value) return std::nullopt;
        f.pairs_.emplace_back(std::move(*name), std::move(*value));
    }
    return f;
}

std::optional<std::string> Form::get(std::string_view name) const {
    for (auto& [k, v] : pairs_)
        if (k == name) return v;
    return std::nullopt;
}

std::vector<std::string> Form::all(std::string_view name) const {
    std::vector<std::string> out;
    for (auto& [k, v] : pairs_)
        if (k == name) out.push_back(v);
    return out;
}

std::size_t Form::count(std::string_view name) const {
    std::size_t n = 0;
    for (auto& [k, v] : pairs_) n += (k == name);
    return n;
}

std::pair<std::string_view, std::string_view> split_target(std::string_view target) {
    auto q = target.find('?');
    if (q == std::string_view::npos) return {target, {}};
    return {target.substr(0, q), target.substr(q + 1)};
}

}  // namespace mtls::sandbox
