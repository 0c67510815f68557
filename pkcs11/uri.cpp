#include "pkcs11/uri.hpp"

#include <charconv>
#include <cstring>

#include "pkcs11/errors.hpp"

namespace mtls::pkcs11 {

namespace {

[[noreturn]] void fail(const std::string& reason) {
    // The URI itself is not repeated: it may carry a PIN (refused, but still text we got).
    throw Error("invalid pkcs11: URI: " + reason);
}

int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

bool allowed_raw(unsigned char c) {
    if (c < 0x21 || c > 0x7e) return false;
    return std::strchr("#\"<>\\^`{|}%", c) == nullptr;
}

std::string decode(std::string_view name, std::string_view v) {
    std::string out;
    out.reserve(v.size());
    for (std::size_t i = 0; i < v.size(); ++i) {
        const unsigned char c = static_cast<unsigned char>(v[i]);
        if (c == '%') {
            if (i + 2 >= v.size()) fail(std::string(name) + ": truncated %-escape");
            const int hi = hexval(v[i + 1]), lo = hexval(v[i + 2]);
            if (hi < 0 || lo < 0) fail(std::string(name) + ": bad %-escape");
            out.push_back(static_cast<char>(hi * 16 + lo));
            i += 2;
        } else if (allowed_raw(c)) {
            out.push_back(static_cast<char>(c));
        } else {
            fail(std::string(name) + ": character not allowed in a URI (percent-encode it)");
        }
    }
    return out;
}

void set_once(std::optional<std::string>& slot, std::string_view name, std::string value) {
    if (slot) fail("attribute " + std::string(name) + " given twice");
    slot = std::move(value);
}

void parse_path_attr(Uri& u, std::string_view name, std::string_view raw) {
    if (name.starts_with("x-")) return;  // vendor-specific: ignored
    if (name == "pin-value" || name == "pin-source")
        fail(std::string(name) +
             " is refused: give the PIN through pin_file, pin_env or pin_credential");
    std::string v = decode(name, raw);
    if (name == "token") return set_once(u.token, name, std::move(v));
    if (name == "manufacturer") return set_once(u.manufacturer, name, std::move(v));
    if (name == "serial") return set_once(u.serial, name, std::move(v));
    if (name == "model") return set_once(u.model, name, std::move(v));
    if (name == "object") return set_once(u.object, name, std::move(v));
    if (name == "id") return set_once(u.id, name, std::move(v));
    if (name == "slot-description") return set_once(u.slot_description, name, std::move(v));
    if (name == "slot-manufacturer") return set_once(u.slot_manufacturer, name, std::move(v));
    if (name == "library-manufacturer") return set_once(u.library_manufacturer, name, std::move(v));
    if (name == "library-description") return set_once(u.library_description, name, std::move(v));
    if (name == "library-version") return;  // accepted, not used for selection
    if (name == "type") {
        if (v != "private" && v != "public" && v != "cert" && v != "secret-key" && v != "data")
            fail("type must be private, public, cert, secret-key or data");
        return set_once(u.type, name, std::move(v));
    }
    if (name == "slot-id") {
        if (u.slot_id) fail("attribute slot-id given twice");
        unsigned long n = 0;
        auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
        if (v.empty() || ec != std::errc() || p != v.data() + v.size())
            fail("slot-id must be a decimal number");
        u.slot_id = n;
        return;
    }
    fail("unknown attribute \"" + std::string(name) + "\"");
}

void parse_query_attr(Uri& u, std::string_view name, std::string_view raw) {
    if (name.starts_with("x-")) return;
    if (name == "pin-value" || name == "pin-source")
        fail(std::string(name) +
             " is refused: give the PIN through pin_file, pin_env or pin_credential");
    std::string v = decode(name, raw);
    if (name == "module-name") return set_once(u.module_name, name, std::move(v));
    if (name == "module-path") return set_once(u.module_path, name, std::move(v));
    fail("unknown query attribute \"" + std::string(name) + "\"");
}

template <class F>
void split_attrs(std::string_view s, char sep, F&& f) {
    if (s.empty()) return;
    std::size_t pos = 0;
    while (true) {
        const std::size_t end = s.find(sep, pos);
        const std::string_view item =
            s.substr(pos, end == std::string_view::npos ? s.npos : end - pos);
        if (item.empty()) fail("empty attribute");
        const std::size_t eq = item.find('=');
        if (eq == std::string_view::npos || eq == 0) fail("attribute without name=value");
        f(item.substr(0, eq), item.substr(eq + 1));
        if (end == std::string_view::npos) break;
        pos = end + 1;
    }
}

}  // namespace

Uri Uri::parse(std::string_view text) {
    constexpr std::string_view scheme = "pkcs11:";
    if (text.size() < scheme.size()) fail("does not start with pkcs11:");
    for (std::size_t i = 0; i < scheme.size(); ++i) {
        char c = text[i];
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
        if (c != scheme[i]) fail("does not start with pkcs11:");
    }
    text.remove_prefix(scheme.size());
    Uri u;
    const std::size_t q = text.find('?');
    const std::string_view path = text.substr(0, q);
    split_attrs(path, ';',
                [&](std::string_view n, std::string_view v) { parse_path_attr(u, n, v); });
    if (q != std::string_view::npos)
        split_attrs(text.substr(q + 1), '&',
                    [&](std::string_view n, std::string_view v) { parse_query_attr(u, n, v); });
    return u;
}

std::string pct_encode(std::string_view bytes) {
    static const char* hex = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : bytes) {
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            out.push_back(static_cast<char>(c));
        } else {
            out.push_back('%');
            out.push_back(hex[c >> 4]);
            out.push_back(hex[c & 15]);
        }
    }
    return out;
}

namespace {
void add(std::string& out, const char* name, const std::optional<std::string>& v) {
    if (!v) return;
    if (out.back() != ':') out.push_back(';');
    out += name;
    out.push_back('=');
    out += pct_encode(*v);
}
}  // namespace

std::string Uri::token_part() const {
    std::string out = "pkcs11:";
    add(out, "token", token);
    add(out, "manufacturer", manufacturer);
    add(out, "serial", serial);
    add(out, "model", model);
    add(out, "slot-description", slot_description);
    add(out, "slot-manufacturer", slot_manufacturer);
    if (slot_id) add(out, "slot-id", std::to_string(*slot_id));
    add(out, "library-manufacturer", library_manufacturer);
    add(out, "library-description", library_description);
    return out;
}

std::string Uri::to_string() const {
    std::string out = token_part();
    add(out, "object", object);
    add(out, "id", id);
    add(out, "type", type);
    return out;
}

}  // namespace mtls::pkcs11
