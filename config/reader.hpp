// Internal to config/: typed reading of one TOML table with error collection. Every key a
// reader asks for becomes "known"; finish() reports the keys nobody asked for as unknown,
// with a did-you-mean. So the loader's code is the schema: there is no second list of keys.
#pragma once

#include "config/config.hpp"

#include <toml++/toml.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mtls::config::detail {

// Collects errors for one file; take() returns them in file order.
class Errors {
  public:
    explicit Errors(std::string file) : file_(std::move(file)) {}
    void add(int line, std::string key, std::string message);
    bool empty() const { return errors_.empty(); }
    std::vector<Error> take();

  private:
    std::string file_;
    std::vector<Error> errors_;
};

int line_of(const toml::node& n);
int line_of(const toml::key& k);

enum class Need { optional, required };

class Section {
  public:
    // `tbl` may be null: an absent optional section (every key then keeps its default).
    // `line`: where the table starts (0 when absent).
    Section(Errors& errors, const toml::table* tbl, std::string path);

    bool present() const { return tbl_ != nullptr; }
    Errors& errors() { return errors_; }
    // A Section for the absent table `key` below this one.
    Section absent(std::string_view key) const { return Section(errors_, nullptr, key_path(key)); }
    int line() const { return line_; }
    const std::string& path() const { return path_; }
    std::string key_path(std::string_view key) const;

    // The node at `key` (null when absent); marks the key as known. Keys are kept as
    // string_views: pass string literals.
    const toml::node* get(std::string_view key);
    // The line of `key` if present, else the table's line.
    int line_of(std::string_view key) const;
    bool has(std::string_view key) const;
    void error(std::string_view key, std::string message);

    // Typed readers: true when the key is present and valid (then `out` is set). A missing
    // required key, a wrong type or a value out of range is reported and gives false.
    bool str(std::string_view key, std::string& out, Need need = Need::optional,
             std::string_view hint = {});
    bool boolean(std::string_view key, bool& out);
    bool integer(std::string_view key, std::int64_t& out, std::int64_t min, std::int64_t max);
    template <class T>
    bool unsigned_int(std::string_view key, T& out, std::int64_t min, std::int64_t max) {
        std::int64_t v = 0;
        if (!integer(key, v, min, max)) return false;
        out = static_cast<T>(v);
        return true;
    }
    bool number(std::string_view key, double& out);
    bool duration(std::string_view key, std::chrono::milliseconds& out,
                  std::chrono::milliseconds min);
    bool seconds(std::string_view key, std::chrono::seconds& out, std::chrono::seconds min);
    bool mode(std::string_view key, mode_t& out);
    // Each element's line goes to `lines` when given.
    bool str_list(std::string_view key, std::vector<std::string>& out,
                  std::vector<int>* lines = nullptr);
    bool id_list(std::string_view key, std::vector<std::uint32_t>& out);
    template <class E>
    bool enumeration(std::string_view key, E& out,
                     std::initializer_list<std::pair<std::string_view, E>> values) {
        std::string text;
        if (!str(key, text)) return false;
        for (const auto& [name, value] : values) {
            if (name == text) {
                out = value;
                return true;
            }
        }
        std::string msg = quote_(text) + " is not one of ";
        bool first = true;
        for (const auto& [name, value] : values) {
            msg += (first ? "\"" : ", \"") + std::string(name) + "\"";
            first = false;
        }
        error(key, msg);
        return false;
    }
    // Of `keys`, at most one may be set (exactly one when `required`). Returns the index of
    // the one set, or -1 (none, or a conflict, which is reported at the later key).
    // `why` is added to the message when none is set.
    int one_of(std::initializer_list<std::string_view> keys, bool required,
               std::string_view why = {});
    // Reports `problem` at `key` unless it is empty; true when it was empty.
    bool check(std::string_view key, const std::string& problem);

    // A sub-table (`[a.b]` or `b = {…}`); nullopt when absent or not a table (reported).
    std::optional<Section> table(std::string_view key);
    // The tables of `[[key]]`; reports a non-array or non-table element.
    std::vector<const toml::table*> array_of_tables(std::string_view key);

    // Reports every key of the table that no reader asked for.
    void finish();

  private:
    // The value as T, or a wrong-type error naming `expected`.
    template <class T>
    const toml::value<T>* typed(std::string_view key, std::string_view expected);

    static std::string quote_(std::string_view s);

    Errors& errors_;
    const toml::table* tbl_;
    std::string path_;
    int line_ = 0;
    std::vector<std::string_view> known_;
};

// "a string", "an integer", … for messages.
std::string_view type_name(const toml::node& n);

}  // namespace mtls::config::detail
