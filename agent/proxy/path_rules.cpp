#include "agent/proxy/path_rules.hpp"

#include <cctype>

namespace mtls::proxy {
namespace {

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

// One round of percent-decoding; malformed escapes stay as they are.
std::string percent_decoded(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '%' && i + 2 < s.size()) {
            int hi = hex_value(s[i + 1]), lo = hex_value(s[i + 2]);
            if (hi >= 0 && lo >= 0) {
                out += static_cast<char>(hi * 16 + lo);
                i += 2;
                continue;
            }
        }
        out += s[i];
    }
    return out;
}

// Whether a segment as sent decodes to "." or "..". Each decoded character takes one or
// three characters as sent, so a segment longer than 6 never does (and is not decoded).
bool is_dot_segment(std::string_view raw_segment) {
    auto dots = [](std::string_view s) { return s == "." || s == ".."; };
    if (raw_segment.find('%') == std::string_view::npos) return dots(raw_segment);
    return raw_segment.size() <= 6 && dots(percent_decoded(raw_segment));
}

// Whether `path` holds `a` or `b` (a path without them needs no segment-wise check): two
// memchr, which beat one loop comparing each character twice.
bool path_holds_either(std::string_view path, char a, char b) {
    return path.find(a) != std::string_view::npos || path.find(b) != std::string_view::npos;
}

}  // namespace

bool has_dot_segment(std::string_view path) {
    // A dot segment needs a "." as sent or its escape %2e.
    if (!path_holds_either(path, '.', '%')) return false;
    while (!path.empty()) {
        auto slash = path.find('/');
        if (is_dot_segment(path.substr(0, slash))) return true;
        if (slash == std::string_view::npos) break;
        path.remove_prefix(slash + 1);
    }
    return false;
}

std::string ambiguous_path_reason(std::string_view path) {
    if (path.find('\\') != std::string_view::npos) return "a backslash";
    // Each form below needs a "%" or a ";" as sent.
    if (!path_holds_either(path, '%', ';')) return "";
    // Escapes as sent: %2f and %5c decode to separators; %25 followed by the escape of
    // ".", "/" or "\" decodes to that escape, which a second decoding turns into the
    // character; %00 to a NUL.
    for (std::size_t i = 0; i + 2 < path.size(); ++i) {
        if (path[i] != '%') continue;
        int hi = hex_value(path[i + 1]), lo = hex_value(path[i + 2]);
        if (hi < 0 || lo < 0) continue;
        int c = hi * 16 + lo;
        if (c == '/') return "an encoded \"/\" (%2f)";
        if (c == '\\') return "an encoded backslash (%5c)";
        if (c == 0) return "an encoded NUL (%00)";
        if (c == '%' && i + 4 < path.size()) {
            int h2 = hex_value(path[i + 3]), l2 = hex_value(path[i + 4]);
            int c2 = h2 < 0 || l2 < 0 ? -1 : h2 * 16 + l2;
            if (c2 == '.' || c2 == '/' || c2 == '\\')
                return "a double-encoded \"" + std::string(1, static_cast<char>(c2)) + "\" (" +
                       std::string(path.substr(i, 5)) + ")";
        }
    }
    // "..;x" or ".;x": a dot segment once the path parameters are stripped.
    std::string_view rest = path;
    while (!rest.empty()) {
        auto slash = rest.find('/');
        std::string_view seg = rest.substr(0, slash);
        if (auto semi = seg.find(';');
            semi != std::string_view::npos && is_dot_segment(seg.substr(0, semi)))
            return "a dot segment with path parameters (\"" + std::string(seg.substr(0, 40)) +
                   "\")";
        if (slash == std::string_view::npos) break;
        rest.remove_prefix(slash + 1);
    }
    return "";
}

}  // namespace mtls::proxy
