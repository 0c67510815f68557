#include "config/reader.hpp"

#include "config/checks.hpp"
#include "config/duration.hpp"

#include <algorithm>

namespace mtls::config::detail {

void Errors::add(int line, std::string key, std::string message) {
    errors_.push_back({file_, line, std::move(key), std::move(message)});
}

std::vector<Error> Errors::take() {
    std::stable_sort(errors_.begin(), errors_.end(),
                     [](const Error& a, const Error& b) { return a.line < b.line; });
    return std::move(errors_);
}

int line_of(const toml::node& n) {
    return static_cast<int>(n.source().begin.line);
}
int line_of(const toml::key& k) {
    return static_cast<int>(k.source().begin.line);
}

std::string_view type_name(const toml::node& n) {
    switch (n.type()) {
        case toml::node_type::string:
            return "a string";
        case toml::node_type::integer:
            return "an integer";
        case toml::node_type::floating_point:
            return "a floating-point number";
        case toml::node_type::boolean:
            return "a boolean";
        case toml::node_type::table:
            return "a table";
        case toml::node_type::array:
            return "an array";
        case toml::node_type::date:
            return "a date";
        case toml::node_type::time:
            return "a time";
        case toml::node_type::date_time:
            return "a date-time";
        case toml::node_type::none:
            break;
    }
    return "nothing";
}

Section::Section(Errors& errors, const toml::table* tbl, std::string path)
    : errors_(errors), tbl_(tbl), path_(std::move(path)), line_(tbl ? detail::line_of(*tbl) : 0) {}

std::string Section::key_path(std::string_view key) const {
    return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
}

const toml::node* Section::get(std::string_view key) {
    if (std::find(known_.begin(), known_.end(), key) == known_.end()) known_.push_back(key);
    return tbl_ ? tbl_->get(key) : nullptr;
}

bool Section::has(std::string_view key) const {
    return tbl_ && tbl_->get(key) != nullptr;
}

int Section::line_of(std::string_view key) const {
    if (tbl_) {
        if (const toml::node* n = tbl_->get(key)) return detail::line_of(*n);
    }
    return line_;
}

void Section::error(std::string_view key, std::string message) {
    errors_.add(line_of(key), key_path(key), std::move(message));
}

template <class T>
const toml::value<T>* Section::typed(std::string_view key, std::string_view expected) {
    const toml::node* n = get(key);
    if (!n) return nullptr;
    const auto* v = n->as<T>();
    if (!v) error(key, "expected " + std::string(expected) + ", got " + std::string(type_name(*n)));
    return v;
}

bool Section::str(std::string_view key, std::string& out, Need need, std::string_view hint) {
    const toml::node* n = get(key);
    if (!n) {
        // In an absent section only the section is reported, not each of its keys.
        if (need == Need::required && tbl_) {
            std::string msg = "required key is missing";
            if (!hint.empty()) msg += " (" + std::string(hint) + ")";
            error(key, msg);
        }
        return false;
    }
    const auto* v = typed<std::string>(key, "a string");
    if (!v) return false;
    if (need == Need::required && v->get().empty()) {
        std::string msg = "must not be empty";
        if (!hint.empty()) msg += " (" + std::string(hint) + ")";
        error(key, msg);
        return false;
    }
    out = v->get();
    return true;
}

bool Section::boolean(std::string_view key, bool& out) {
    const auto* v = typed<bool>(key, "true or false");
    if (!v) return false;
    out = v->get();
    return true;
}

bool Section::integer(std::string_view key, std::int64_t& out, std::int64_t min, std::int64_t max) {
    const auto* v = typed<std::int64_t>(key, "an integer");
    if (!v) return false;
    std::int64_t x = v->get();
    if (x < min || x > max) {
        error(key, std::to_string(x) + " is out of range (" + std::to_string(min) + " to " +
                       std::to_string(max) + ")");
        return false;
    }
    out = x;
    return true;
}

bool Section::number(std::string_view key, double& out) {
    const toml::node* n = get(key);
    if (!n) return false;
    if (const auto* f = n->as_floating_point()) {
        out = f->get();
        return true;
    }
    if (const auto* i = n->as_integer()) {
        out = static_cast<double>(i->get());
        return true;
    }
    error(key, "expected a number, got " + std::string(type_name(*n)));
    return false;
}

bool Section::duration(std::string_view key, std::chrono::milliseconds& out,
                       std::chrono::milliseconds min) {
    const auto* v = typed<std::string>(key, "a duration string such as \"30s\"");
    if (!v) return false;
    auto d = parse_duration(v->get());
    if (!d) {
        error(key,
              checks::quote(v->get()) +
                  " is not a duration (write e.g. \"1500ms\", \"30s\", \"5m\", \"2h\", \"1h30m\")");
        return false;
    }
    if (*d < min) {
        error(key,
              checks::quote(v->get()) + " is too short (at least " + format_duration(min) + ")");
        return false;
    }
    out = *d;
    return true;
}

bool Section::seconds(std::string_view key, std::chrono::seconds& out, std::chrono::seconds min) {
    std::chrono::milliseconds ms{};
    if (!duration(key, ms, min)) return false;
    if (ms.count() % 1000 != 0) {
        error(key, checks::quote(format_duration(ms)) + " is not a whole number of seconds");
        return false;
    }
    out = std::chrono::duration_cast<std::chrono::seconds>(ms);
    return true;
}

bool Section::mode(std::string_view key, mode_t& out) {
    const auto* v = typed<std::string>(key, "a mode string such as \"0660\"");
    if (!v) return false;
    unsigned m = 0;
    if (auto e = checks::file_mode(v->get(), m); !e.empty()) {
        error(key, e);
        return false;
    }
    out = static_cast<mode_t>(m);
    return true;
}

bool Section::str_list(std::string_view key, std::vector<std::string>& out,
                       std::vector<int>* lines) {
    const toml::node* n = get(key);
    if (!n) return false;
    const toml::array* a = n->as_array();
    if (!a) {
        error(key, "expected an array of strings, got " + std::string(type_name(*n)));
        return false;
    }
    std::vector<std::string> values;
    std::vector<int> value_lines;
    bool ok = true;
    for (std::size_t i = 0; i < a->size(); ++i) {
        const toml::node& e = *a->get(i);
        if (const auto* s = e.as_string()) {
            values.push_back(s->get());
            value_lines.push_back(detail::line_of(e));
        } else {
            errors_.add(detail::line_of(e), key_path(key) + "[" + std::to_string(i) + "]",
                        "expected a string, got " + std::string(type_name(e)));
            ok = false;
        }
    }
    if (!ok) return false;
    out = std::move(values);
    if (lines) *lines = std::move(value_lines);
    return true;
}

bool Section::id_list(std::string_view key, std::vector<std::uint32_t>& out) {
    const toml::node* n = get(key);
    if (!n) return false;
    const toml::array* a = n->as_array();
    if (!a) {
        error(key, "expected an array of numeric ids, got " + std::string(type_name(*n)));
        return false;
    }
    std::vector<std::uint32_t> values;
    bool ok = true;
    for (std::size_t i = 0; i < a->size(); ++i) {
        const toml::node& e = *a->get(i);
        const auto* v = e.as_integer();
        std::string where = key_path(key) + "[" + std::to_string(i) + "]";
        if (!v) {
            errors_.add(detail::line_of(e), where,
                        "expected a numeric id, got " + std::string(type_name(e)));
            ok = false;
        } else if (v->get() < 0 || v->get() > 4294967294LL) {
            errors_.add(detail::line_of(e), where,
                        std::to_string(v->get()) + " is not a valid uid/gid (0 to 4294967294)");
            ok = false;
        } else {
            values.push_back(static_cast<std::uint32_t>(v->get()));
        }
    }
    if (!ok) return false;
    out = std::move(values);
    return true;
}

std::optional<Section> Section::table(std::string_view key) {
    const toml::node* n = get(key);
    if (!n) return std::nullopt;
    const toml::table* t = n->as_table();
    if (!t) {
        error(key, "expected a table ([" + key_path(key) + "]), got " + std::string(type_name(*n)));
        return std::nullopt;
    }
    return Section(errors_, t, key_path(key));
}

std::vector<const toml::table*> Section::array_of_tables(std::string_view key) {
    std::vector<const toml::table*> out;
    const toml::node* n = get(key);
    if (!n) return out;
    const toml::array* a = n->as_array();
    if (!a) {
        error(key, "expected [[" + key_path(key) + "]] entries (an array of tables), got " +
                       std::string(type_name(*n)));
        return out;
    }
    for (std::size_t i = 0; i < a->size(); ++i) {
        const toml::node& e = *a->get(i);
        if (const toml::table* t = e.as_table()) {
            out.push_back(t);
        } else {
            errors_.add(detail::line_of(e), key_path(key) + "[" + std::to_string(i) + "]",
                        "expected a table, got " + std::string(type_name(e)));
            out.push_back(nullptr);
        }
    }
    return out;
}

std::string Section::quote_(std::string_view s) {
    return checks::quote(s);
}

bool Section::check(std::string_view key, const std::string& problem) {
    if (problem.empty()) return true;
    error(key, problem);
    return false;
}

int Section::one_of(std::initializer_list<std::string_view> keys, bool required,
                    std::string_view why) {
    std::vector<std::pair<int, std::string_view>> set;  // (line, key)
    int index = -1, i = 0;
    for (auto k : keys) {
        get(k);
        if (has(k)) {
            set.emplace_back(line_of(k), k);
            index = i;
        }
        ++i;
    }
    std::string names;
    i = 0;
    for (auto k : keys) {
        names += (i == 0 ? "" : (i + 1 == int(keys.size()) ? " or " : ", ")) + std::string(k);
        ++i;
    }
    if (set.empty()) {
        if (required && tbl_)
            errors_.add(line_, path_,
                        "set one of " + names + (why.empty() ? "" : " (" + std::string(why) + ")"));
        return -1;
    }
    if (set.size() == 1) return index;
    std::stable_sort(set.begin(), set.end());
    for (std::size_t j = 1; j < set.size(); ++j) {
        errors_.add(set[j].first, key_path(set[j].second),
                    "conflicts with " + std::string(set[0].second) + " (line " +
                        std::to_string(set[0].first) + "): set only one of " + names);
    }
    return -1;
}

void Section::finish() {
    if (!tbl_) return;
    for (auto&& [k, v] : *tbl_) {
        if (std::find(known_.begin(), known_.end(), k.str()) != known_.end()) continue;
        std::string msg = "unknown key";
        if (auto near = checks::did_you_mean(k.str(), known_); !near.empty())
            msg += " (did you mean \"" + near + "\"?)";
        errors_.add(detail::line_of(k), key_path(k.str()), msg);
    }
}

}  // namespace mtls::config::detail
