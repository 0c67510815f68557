// Structured logging: one line per event to stderr, `ts=… level=… event=… key=value …` (or
// one JSON object with typed values). Timestamps are RFC 3339, UTC, milliseconds.
// When stderr is the journal (JOURNAL_STREAM names the device and inode of fd 2), each event
// is sent with sd_journal_sendv as native fields instead — MESSAGE, PRIORITY,
// SYSLOG_IDENTIFIER, EVENT and one upper-cased field per key — so that
// `journalctl -u mtls-agent ROUTE=partner-a` finds it; no timestamp then (journald stamps
// it). If the journal refuses an event, the line goes to stderr with the `<N>` priority
// prefix. Event names: `<part>.<snake_case>` (docs/log-events.md lists them all). Never pass
// secrets: use redact() for anything token- or PIN-like.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>

namespace mtls::log {

enum class Level { debug = 0, info = 1, warning = 2, error = 3 };
enum class Format { text, json };

// One key and its value, typed: numbers are JSON numbers and booleans JSON booleans in the
// JSON format; the text format writes numbers as std::to_string does and booleans as
// true/false.
struct Field {
    using Value = std::variant<std::string, std::int64_t, std::uint64_t, double, bool>;
    std::string_view key;
    Value value;
    Field(std::string_view k, std::string v) : key(k), value(std::move(v)) {}
    Field(std::string_view k, std::string_view v) : key(k), value(std::string(v)) {}
    Field(std::string_view k, const char* v) : key(k), value(std::string(v ? v : "")) {}
    Field(std::string_view k, bool b) : key(k), value(b) {}
    template <class N>
    requires(std::is_arithmetic_v<N> && !std::is_same_v<N, bool>) Field(std::string_view k, N n)
        : key(k), value(typed(n)) {}

    // The value as the text format writes it (before quoting).
    std::string text() const;

  private:
    template <class N>
    static Value typed(N n) {
        if constexpr (std::is_floating_point_v<N>)
            return static_cast<double>(n);
        else if constexpr (std::is_signed_v<N>)
            return static_cast<std::int64_t>(n);
        else
            return static_cast<std::uint64_t>(n);
    }
};

// Sets the least severe level written and the format. Also looks again at whether stderr is
// the journal (JOURNAL_STREAM against fstat(2)): call it again after redirecting fd 2.
void configure(Level min_level, Format format);
bool parse_level(std::string_view text, Level& out);
bool enabled(Level level);

// [logging] access_log: whether the proxy writes its per-request line (default true).
void set_access_log(bool on);
bool access_log();

// Whether events go to the journal as native fields (stderr is the journal's stream).
bool to_journal();

void write(Level level, std::string_view event, std::initializer_list<Field> fields);

inline void debug(std::string_view ev, std::initializer_list<Field> f = {}) {
    write(Level::debug, ev, f);
}
inline void info(std::string_view ev, std::initializer_list<Field> f = {}) {
    write(Level::info, ev, f);
}
inline void warn(std::string_view ev, std::initializer_list<Field> f = {}) {
    write(Level::warning, ev, f);
}
inline void error(std::string_view ev, std::initializer_list<Field> f = {}) {
    write(Level::error, ev, f);
}

// A stable, non-reversible short name for a secret: "sha256:" + 8 hex digits.
std::string redact(std::string_view secret);

// The journal field name for a log key: upper-cased, characters other than [A-Z0-9_] as
// `_`, prefixed with `F_` when it would start with `_` or a digit or be one of the fields
// the logger sets itself (MESSAGE, PRIORITY, EVENT, …); at most 64 characters.
std::string journal_field_name(std::string_view key);

// RFC 3339 UTC with milliseconds, e.g. 2026-12-06T21:04:05.123Z, of the current time.
std::string timestamp_now();

}  // namespace mtls::log
