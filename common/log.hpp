// Structured logging: one line per event, `level=… event=… key=value …` (or JSON), to
// stderr. Under systemd (JOURNAL_STREAM set) every line starts with the journal's `<N>`
// priority prefix. Never pass secrets: use redact() for anything token- or PIN-like.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>

namespace mtls::log {

enum class Level { debug = 0, info = 1, warning = 2, error = 3 };
enum class Format { text, json };

struct Field {
    std::string_view key;
    std::string value;
    Field(std::string_view k, std::string v) : key(k), value(std::move(v)) {}
    Field(std::string_view k, std::string_view v) : key(k), value(v) {}
    Field(std::string_view k, const char* v) : key(k), value(v ? v : "") {}
    template <class N>
        requires std::is_arithmetic_v<N>
    Field(std::string_view k, N n) : key(k), value(std::to_string(n)) {}
};

void configure(Level min_level, Format format);
bool parse_level(std::string_view text, Level& out);
bool enabled(Level level);

void write(Level level, std::string_view event, std::initializer_list<Field> fields);

inline void debug(std::string_view ev, std::initializer_list<Field> f = {}) { write(Level::debug, ev, f); }
inline void info(std::string_view ev, std::initializer_list<Field> f = {}) { write(Level::info, ev, f); }
inline void warn(std::string_view ev, std::initializer_list<Field> f = {}) { write(Level::warning, ev, f); }
inline void error(std::string_view ev, std::initializer_list<Field> f = {}) { write(Level::error, ev, f); }

// A stable, non-reversible short name for a secret: "sha256:" + 8 hex digits.
std::string redact(std::string_view secret);

}  // namespace mtls::log
