#include "common/log.hpp"

#include "common/encoding.hpp"

#include <nlohmann/json.hpp>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>

namespace mtls::log {
namespace {

std::atomic<int> g_min{static_cast<int>(Level::info)};
std::atomic<int> g_format{static_cast<int>(Format::text)};
const bool g_journal = std::getenv("JOURNAL_STREAM") != nullptr;
std::mutex g_mu;

const char* name(Level l) {
    switch (l) {
        case Level::debug: return "debug";
        case Level::info: return "info";
        case Level::warning: return "warning";
        case Level::error: return "error";
    }
    return "info";
}

int syslog_priority(Level l) {
    switch (l) {
        case Level::debug: return 7;
        case Level::info: return 6;
        case Level::warning: return 4;
        case Level::error: return 3;
    }
    return 6;
}

void append_text_value(std::string& out, std::string_view v) {
    bool plain = !v.empty();
    for (char c : v) {
        if (c == ' ' || c == '"' || c == '=' || c == '\\' || static_cast<unsigned char>(c) < 0x20) {
            plain = false;
            break;
        }
    }
    if (plain) {
        out += v;
        return;
    }
    out += '"';
    for (char c : v) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (c == '\n') {
            out += "\\n";
        } else if (static_cast<unsigned char>(c) < 0x20) {
            out += '?';
        } else {
            out += c;
        }
    }
    out += '"';
}

}  // namespace

void configure(Level min_level, Format format) {
    g_min = static_cast<int>(min_level);
    g_format = static_cast<int>(format);
}

bool parse_level(std::string_view text, Level& out) {
    if (text == "debug") out = Level::debug;
    else if (text == "info") out = Level::info;
    else if (text == "warning" || text == "warn") out = Level::warning;
    else if (text == "error") out = Level::error;
    else return false;
    return true;
}

bool enabled(Level level) { return static_cast<int>(level) >= g_min.load(std::memory_order_relaxed); }

void write(Level level, std::string_view event, std::initializer_list<Field> fields) {
    if (!enabled(level)) return;
    std::string line;
    if (g_journal) {
        line += '<';
        line += static_cast<char>('0' + syslog_priority(level));
        line += '>';
    }
    if (static_cast<Format>(g_format.load()) == Format::json) {
        nlohmann::json j;
        j["level"] = name(level);
        j["event"] = std::string(event);
        for (const auto& f : fields) j[std::string(f.key)] = f.value;
        line += j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    } else {
        line += "level=";
        line += name(level);
        line += " event=";
        append_text_value(line, event);
        for (const auto& f : fields) {
            line += ' ';
            line += f.key;
            line += '=';
            append_text_value(line, f.value);
        }
    }
    line += '\n';
    std::lock_guard lock(g_mu);
    std::fwrite(line.data(), 1, line.size(), stderr);
    std::fflush(stderr);
}

std::string redact(std::string_view secret) {
    return "sha256:" + encoding::hex(encoding::sha256(secret)).substr(0, 8);
}

}  // namespace mtls::log
