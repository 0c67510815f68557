#include "common/log.hpp"

#include "common/encoding.hpp"

#include <sys/stat.h>
#include <sys/uio.h>
#include <nlohmann/json.hpp>
// CODE_FILE/CODE_LINE would name this file, not the caller: left out.
#define SD_JOURNAL_SUPPRESS_LOCATION 1
#include <systemd/sd-journal.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <mutex>
#include <vector>

namespace mtls::log {
namespace {

std::atomic<int> g_min{static_cast<int>(Level::info)};
std::atomic<int> g_format{static_cast<int>(Format::text)};
std::atomic<bool> g_access_log{true};
std::mutex g_mu;

// JOURNAL_STREAM is "<st_dev>:<st_ino>" of the stream systemd connected; it is inherited by
// children whose stderr goes elsewhere, so it counts only when it names fd 2 itself.
bool stderr_is_journal_stream() {
    const char* env = std::getenv("JOURNAL_STREAM");
    if (!env) return false;
    unsigned long long dev = 0, ino = 0;
    char extra = 0;
    if (std::sscanf(env, "%llu:%llu%c", &dev, &ino, &extra) != 2) return false;
    struct stat st {};
    if (::fstat(2, &st) != 0) return false;
    if (static_cast<unsigned long long>(st.st_dev) != dev ||
        static_cast<unsigned long long>(st.st_ino) != ino)
        return false;
    return true;
}

// sd_journal_sendv drops an event silently when the socket is missing (ENOENT): then the
// stream it is.
bool journal_socket_exists() {
    struct stat sock {};
    return ::stat("/run/systemd/journal/socket", &sock) == 0 && S_ISSOCK(sock.st_mode);
}

std::atomic<bool> g_stream{stderr_is_journal_stream()};           // stderr is the journal's stream
std::atomic<bool> g_native{g_stream && journal_socket_exists()};  // send native fields

void detect_journal() {
    const bool stream = stderr_is_journal_stream();
    g_stream = stream;
    g_native = stream && journal_socket_exists();
}

const char* level_name(Level l) {
    switch (l) {
        case Level::debug:
            return "debug";
        case Level::info:
            return "info";
        case Level::warning:
            return "warning";
        case Level::error:
            return "error";
    }
    return "info";
}

int syslog_priority(Level l) {
    switch (l) {
        case Level::debug:
            return 7;
        case Level::info:
            return 6;
        case Level::warning:
            return 4;
        case Level::error:
            return 3;
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

void append_text_fields(std::string& out, std::initializer_list<Field> fields) {
    for (const auto& f : fields) {
        out += ' ';
        out += f.key;
        out += '=';
        append_text_value(out, f.text());
    }
}

nlohmann::ordered_json json_value(const Field::Value& v) {
    return std::visit([](const auto& x) { return nlohmann::ordered_json(x); }, v);
}

// Sends one event as native journal fields. False when the journal refused it.
bool send_to_journal(Level level, std::string_view event, std::initializer_list<Field> fields) {
    std::string message(event);
    append_text_fields(message, fields);
    std::vector<std::string> items;
    items.reserve(fields.size() + 4);
    items.push_back("MESSAGE=" + message);
    items.push_back("PRIORITY=" + std::to_string(syslog_priority(level)));
    items.push_back("SYSLOG_IDENTIFIER=mtls-agent");
    items.push_back("EVENT=" + std::string(event));
    for (const auto& f : fields) items.push_back(journal_field_name(f.key) + "=" + f.text());
    std::vector<iovec> iov;
    iov.reserve(items.size());
    for (auto& s : items) iov.push_back(iovec{s.data(), s.size()});
    return sd_journal_sendv(iov.data(), static_cast<int>(iov.size())) >= 0;
}

}  // namespace

std::string Field::text() const {
    return std::visit(
        [](const auto& x) -> std::string {
            using T = std::decay_t<decltype(x)>;
            if constexpr (std::is_same_v<T, std::string>)
                return x;
            else if constexpr (std::is_same_v<T, bool>)
                return x ? "true" : "false";
            else
                return std::to_string(x);
        },
        value);
}

void configure(Level min_level, Format format) {
    g_min = static_cast<int>(min_level);
    g_format = static_cast<int>(format);
    detect_journal();
}

bool parse_level(std::string_view text, Level& out) {
    if (text == "debug")
        out = Level::debug;
    else if (text == "info")
        out = Level::info;
    else if (text == "warning" || text == "warn")
        out = Level::warning;
    else if (text == "error")
        out = Level::error;
    else
        return false;
    return true;
}

bool enabled(Level level) {
    return static_cast<int>(level) >= g_min.load(std::memory_order_relaxed);
}

void set_access_log(bool on) {
    g_access_log = on;
}
bool access_log() {
    return g_access_log.load(std::memory_order_relaxed);
}
bool to_journal() {
    return g_native.load(std::memory_order_relaxed);
}

std::string timestamp_now() {
    const auto now = std::chrono::system_clock::now();
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
    const std::time_t secs = static_cast<std::time_t>(ms / 1000);
    std::tm tm{};
    ::gmtime_r(&secs, &tm);
    char buf[32];
    const auto n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    std::snprintf(buf + n, sizeof buf - n, ".%03dZ", static_cast<int>(ms % 1000));
    return buf;
}

std::string journal_field_name(std::string_view key) {
    std::string out;
    out.reserve(key.size() + 2);
    for (char c : key) {
        if (c >= 'a' && c <= 'z')
            out += static_cast<char>(c - 'a' + 'A');
        else if ((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_')
            out += c;
        else
            out += '_';
    }
    static constexpr std::string_view own[] = {
        "MESSAGE",           "MESSAGE_ID",      "PRIORITY",   "EVENT",
        "SYSLOG_IDENTIFIER", "SYSLOG_FACILITY", "SYSLOG_PID", "CODE_FILE",
        "CODE_LINE",         "CODE_FUNC",       "ERRNO"};
    bool clash = out.empty() || out[0] == '_' || (out[0] >= '0' && out[0] <= '9');
    for (auto o : own) clash = clash || out == o;
    if (clash) out = "F_" + out;
    if (out.size() > 64) out.resize(64);
    return out;
}

void write(Level level, std::string_view event, std::initializer_list<Field> fields) {
    if (!enabled(level)) return;
    if (to_journal() && send_to_journal(level, event, fields)) return;
    const bool journal = g_stream.load(std::memory_order_relaxed);
    std::string line;
    if (journal) {
        // The journal refused the datagram: the stream still reaches it, with the priority.
        line += '<';
        line += static_cast<char>('0' + syslog_priority(level));
        line += '>';
    }
    if (static_cast<Format>(g_format.load()) == Format::json) {
        nlohmann::ordered_json j;
        if (!journal) j["ts"] = timestamp_now();
        j["level"] = level_name(level);
        j["event"] = std::string(event);
        for (const auto& f : fields) j[std::string(f.key)] = json_value(f.value);
        line += j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    } else {
        if (!journal) {
            line += "ts=";
            line += timestamp_now();
            line += ' ';
        }
        line += "level=";
        line += level_name(level);
        line += " event=";
        append_text_value(line, event);
        append_text_fields(line, fields);
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
