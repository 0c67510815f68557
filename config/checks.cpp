#include "config/checks.hpp"

#include "common/encoding.hpp"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <memory>
#include <optional>
#include <vector>
#include "common/text.hpp"

namespace mtls::config::checks {

namespace {

struct CurlUrlFree {
    void operator()(CURLU* u) const { curl_url_cleanup(u); }
};
struct CurlStrFree {
    void operator()(char* s) const { curl_free(s); }
};
using CurlUrl = std::unique_ptr<CURLU, CurlUrlFree>;
using CurlStr = std::unique_ptr<char, CurlStrFree>;

// One part of a parsed URL, or "" when absent.
std::string url_part(CURLU* u, CURLUPart part) {
    char* raw = nullptr;
    if (curl_url_get(u, part, &raw, 0) != CURLUE_OK) return {};
    CurlStr s(raw);
    return s ? std::string(s.get()) : std::string();
}

bool has_control(std::string_view s) {
    return std::any_of(s.begin(), s.end(), [](unsigned char c) { return c < 0x20 || c == 0x7f; });
}

using text::iequals;

bool is_loopback(const std::string& host) {
    if (iequals(host, "localhost")) return true;
    unsigned char buf[16];
    if (inet_pton(AF_INET, host.c_str(), buf) == 1) return buf[0] == 127;
    if (inet_pton(AF_INET6, host.c_str(), buf) == 1) {
        static const unsigned char v6_loop[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
        static const unsigned char v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (std::memcmp(buf, v6_loop, 16) == 0) return true;
        return std::memcmp(buf, v4_mapped, 12) == 0 && buf[12] == 127;
    }
    return false;
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
    auto norm = [](char c) { return c == '-' ? '_' : text::ascii_lower(c); };
    std::vector<std::size_t> prev(b.size() + 1), cur(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) prev[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        cur[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            std::size_t sub = prev[j - 1] + (norm(a[i - 1]) == norm(b[j - 1]) ? 0 : 1);
            cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
        }
        std::swap(prev, cur);
    }
    return prev[b.size()];
}

}  // namespace

std::string quote(std::string_view s) {
    static const char hexd[] = "0123456789abcdef";
    std::string out = "\"";
    for (unsigned char c : s) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += char(c);
        } else if (c == '\n') {
            out += "\\n";
        } else if (c == '\t') {
            out += "\\t";
        } else if (c < 0x20 || c == 0x7f) {
            out += "\\x";
            out += hexd[c >> 4];
            out += hexd[c & 15];
        } else {
            out += char(c);
        }
    }
    return out + "\"";
}

std::string number(double v) {
    char buf[64];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
    std::string out(buf, ec == std::errc() ? end : buf);
    if (out.find_first_of(".eEn") == std::string::npos) out += ".0";  // n: nan/inf
    return out;
}

std::string https_url(std::string_view url) {
    const std::string q = quote(url);
    if (url.empty()) return "is empty; write an https URL such as \"https://host.example/\"";
    if (has_control(url) || url.find(' ') != std::string_view::npos)
        return q + " is not an https URL (it contains spaces or control characters)";
    if (url.find("://") == std::string_view::npos)
        return q + " is not an https URL (write https://host[:port]/path)";
    CurlUrl u(curl_url());
    if (!u) return "out of memory while checking " + q;
    std::string text(url);
    CURLUcode rc = curl_url_set(u.get(), CURLUPART_URL, text.c_str(), CURLU_NON_SUPPORT_SCHEME);
    if (rc != CURLUE_OK)
        return q + " is not an https URL (" + curl_url_strerror(rc) +
               "; write https://host[:port]/path)";
    std::string scheme = url_part(u.get(), CURLUPART_SCHEME);
    if (iequals(scheme, "http")) return q + " is not an https URL (plain http is not allowed here)";
    if (!iequals(scheme, "https")) return q + " is not an https URL";
    if (url_part(u.get(), CURLUPART_HOST).empty()) return q + " has no host";
    if (!url_part(u.get(), CURLUPART_USER).empty() ||
        !url_part(u.get(), CURLUPART_PASSWORD).empty())
        return q + " contains user:password@; credentials do not belong in URLs";
    if (url.find('#') != std::string_view::npos) return q + " has a #fragment; remove it";
    return {};
}

std::string listen_address(std::string_view text, ListenAddress& out) {
    const std::string q = quote(text);
    std::string_view host, port;
    if (!text.empty() && text.front() == '[') {
        auto close = text.find(']');
        if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
            return q + " is not host:port (write IPv6 as [::1]:8480)";
        host = text.substr(1, close - 1);
        port = text.substr(close + 2);
        unsigned char buf[16];
        if (inet_pton(AF_INET6, std::string(host).c_str(), buf) != 1)
            return q + ": " + quote(host) + " is not an IPv6 address";
    } else {
        auto colon = text.rfind(':');
        if (colon == std::string_view::npos)
            return q + " is not host:port (e.g. \"127.0.0.1:8480\")";
        host = text.substr(0, colon);
        port = text.substr(colon + 1);
        if (host.find(':') != std::string_view::npos)
            return q + " is not host:port (write IPv6 in brackets, e.g. \"[::1]:8480\")";
        unsigned char buf[4];
        if (!iequals(host, "localhost") && inet_pton(AF_INET, std::string(host).c_str(), buf) != 1)
            return q + ": the host must be an IP address or \"localhost\"";
    }
    unsigned long p = 0;
    if (port.empty() || port.size() > 5 ||
        !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; }))
        return q + " has no valid port (1-65535)";
    p = std::stoul(std::string(port));
    if (p < 1 || p > 65535) return q + " has no valid port (1-65535)";
    out.host = std::string(host);
    out.port = static_cast<unsigned>(p);
    out.loopback = is_loopback(out.host);
    return {};
}

std::string dns_name(std::string_view name) {
    const std::string q = quote(name);
    if (name.empty()) return "is empty";
    if (name.size() > 253) return q + " is longer than 253 characters";
    std::size_t start = 0;
    while (start <= name.size()) {
        auto dot = name.find('.', start);
        std::string_view label =
            name.substr(start, dot == std::string_view::npos ? dot : dot - start);
        if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-' ||
            !std::all_of(label.begin(), label.end(), [](char c) {
                return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                       c == '-';
            }))
            return q + " is not a DNS name (letters, digits, '-' and '.')";
        if (dot == std::string_view::npos) break;
        start = dot + 1;
    }
    return {};
}

std::string allowed_host(std::string_view text) {
    if (text == "*" || ip_address(text).empty() || dns_name(text).empty()) return {};
    return quote(text) + " is not a host name or IP address (no port; \"*\" allows any Host)";
}

std::string allowed_origin(std::string_view text) {
    if (text == "*") return {};
    const std::string bad = quote(text) +
                            " is not a web origin like \"https://app.example\" or "
                            "\"http://localhost:3000\" (scheme://host[:port], no path)";
    auto sep = text.find("://");
    if (sep == std::string_view::npos || sep == 0) return bad;
    std::string_view scheme = text.substr(0, sep), rest = text.substr(sep + 3);
    if (!std::all_of(scheme.begin(), scheme.end(), [](char c) {
            return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '-' ||
                   c == '.';
        }))
        return bad;
    if (rest.empty() || rest.find_first_of("/?#@ ") != std::string_view::npos) return bad;
    std::string_view host = rest;
    if (rest.front() == '[') {
        auto close = rest.find(']');
        if (close == std::string_view::npos || !ip_address(rest.substr(1, close - 1)).empty())
            return bad;
        host = {};
        rest.remove_prefix(close + 1);
        if (!rest.empty() && rest.front() != ':') return bad;
    } else if (auto colon = rest.rfind(':'); colon != std::string_view::npos) {
        host = rest.substr(0, colon);
        rest.remove_prefix(colon);
    } else {
        rest = {};
    }
    if (!host.empty() && !dns_name(host).empty() && !ip_address(host).empty()) return bad;
    if (!rest.empty()) {  // ":port"
        std::string_view port = rest.substr(1);
        if (port.empty() || port.size() > 5 ||
            !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; }))
            return bad;
    }
    return {};
}

std::string ip_address(std::string_view text) {
    const std::string t(text);
    unsigned char buf[16];
    if (::inet_pton(AF_INET, t.c_str(), buf) == 1 || ::inet_pton(AF_INET6, t.c_str(), buf) == 1)
        return {};
    return quote(text) + " is not an IPv4 or IPv6 address";
}

std::string san_uri(std::string_view text) {
    const auto colon = text.find(':');
    auto alpha = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); };
    bool scheme_ok =
        colon != std::string_view::npos && colon > 0 && alpha(text[0]) &&
        std::all_of(text.begin(), text.begin() + static_cast<long>(colon), [&](char c) {
            return alpha(c) || (c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.';
        });
    bool chars_ok = std::all_of(text.begin(), text.end(), [](char c) {
        return static_cast<unsigned char>(c) > 0x20 && static_cast<unsigned char>(c) < 0x7f;
    });
    if (!scheme_ok || !chars_ok || colon + 1 >= text.size())
        return quote(text) + " is not an absolute URI (scheme:rest, ASCII, no spaces)";
    return {};
}

std::string email_address(std::string_view text) {
    const auto at = text.rfind('@');
    bool chars_ok = std::all_of(text.begin(), text.end(), [](char c) {
        return static_cast<unsigned char>(c) > 0x20 && static_cast<unsigned char>(c) < 0x7f;
    });
    if (at == std::string_view::npos || at == 0 || !chars_ok ||
        !dns_name(text.substr(at + 1)).empty())
        return quote(text) + " is not an email address (local@domain, ASCII)";
    return {};
}

std::string country_code(std::string_view text) {
    auto upper = [](char c) { return c >= 'A' && c <= 'Z'; };
    if (text.size() != 2 || !upper(text[0]) || !upper(text[1]))
        return quote(text) + " is not a two-letter country code (ISO 3166-1, e.g. \"US\")";
    return {};
}

std::string printable_string(std::string_view text, std::size_t max) {
    if (text.empty() || text.size() > max)
        return "must be 1 to " + std::to_string(max) + " characters";
    for (char c : text) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  std::string_view(" '()+,-./:=?").find(c) != std::string_view::npos;
        if (!ok)
            return quote(text) +
                   " has characters a PrintableString cannot hold (letters, digits, space and "
                   "'()+,-./:=? only)";
    }
    return {};
}

std::string absolute_path(std::string_view path) {
    if (path.empty()) return "is empty; write an absolute path";
    if (path.front() != '/') return quote(path) + " is not an absolute path";
    if (has_control(path)) return quote(path) + " contains control characters";
    return {};
}

std::string unix_socket_path(std::string_view path) {
    if (auto e = absolute_path(path); !e.empty()) return e;
    if (path.size() >= sizeof(sockaddr_un{}.sun_path))
        return quote(path) + " is too long for a Unix socket (at most " +
               std::to_string(sizeof(sockaddr_un{}.sun_path) - 1) + " bytes)";
    return {};
}

std::string readable_file(const std::string& path, bool secret) {
    if (auto e = absolute_path(path); !e.empty()) return e;
    const std::string q = quote(path);
    // O_NONBLOCK: a FIFO must not hang the check; nothing is read.
    int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        int err = errno;
        std::string what = q + " cannot be read: " + std::strerror(err);
        if (err == EACCES) what += " (give the agent's user read access)";
        return what;
    }
    struct stat st {};
    int rc = ::fstat(fd, &st);
    ::close(fd);
    if (rc != 0) return q + " cannot be read: " + std::strerror(errno);
    if (!S_ISREG(st.st_mode)) return q + " is not a regular file";
    if (secret && (st.st_mode & S_IROTH))
        return q +
               " is readable by every user; restrict it (chmod 0600, or 0640 with the agent's "
               "group)";
    return {};
}

std::string executable_file(const std::string& path) {
    if (auto e = absolute_path(path); !e.empty()) return e;
    const std::string q = quote(path);
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return q + " cannot be found: " + std::strerror(errno);
    if (!S_ISREG(st.st_mode)) return q + " is not a regular file";
    if (::access(path.c_str(), X_OK) != 0)
        return q + " is not executable by the agent's user: " + std::strerror(errno);
    return {};
}

std::string existing_parent_dir(const std::string& path) {
    if (auto e = absolute_path(path); !e.empty()) return e;
    if (path.back() == '/') return quote(path) + " names a directory; write a file name";
    std::string dir = path.substr(0, path.find_last_of('/'));
    if (dir.empty()) dir = "/";
    const std::string q = quote(dir);
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0)
        return "directory " + q + " cannot be used: " + std::strerror(errno) +
               " (create it, e.g. install -d -m 0755 " + dir + ")";
    if (!S_ISDIR(st.st_mode)) return q + " is not a directory";
    if (st.st_mode & S_IWOTH)
        return "directory " + q +
               " is writable by every user, who could replace the file; use a directory only "
               "the agent (and its group) can write";
    return {};
}

namespace {
// A decimal id that fits uid_t / gid_t, else nullopt.
std::optional<std::uint32_t> numeric_id(std::string_view text) {
    std::uint32_t v = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc() || end != text.data() + text.size() || v == 0xffffffffu)
        return std::nullopt;
    return v;
}

// getpwnam_r / getgrnam_r with a growing buffer; false when there is no such name.
template <class Entry, class Lookup>
bool lookup_name(const std::string& name, Lookup lookup, Entry& entry) {
    std::vector<char> buf(1024);
    for (;;) {
        Entry* found = nullptr;
        int rc = lookup(name.c_str(), &entry, buf.data(), buf.size(), &found);
        if (rc == ERANGE && buf.size() < (1u << 20)) {
            buf.resize(buf.size() * 2);
            continue;
        }
        return rc == 0 && found != nullptr;
    }
}
}  // namespace

std::string user_id(std::string_view text, uid_t& out) {
    if (auto n = numeric_id(text)) {
        out = static_cast<uid_t>(*n);
        return {};
    }
    if (auto e = plain_name(text); !e.empty()) return e;
    struct passwd pw {};
    if (!lookup_name(std::string(text), ::getpwnam_r, pw))
        return "no user " + quote(text) + " on this host (give a user name or a numeric uid)";
    out = pw.pw_uid;
    return {};
}

std::string group_id(std::string_view text, gid_t& out) {
    if (auto n = numeric_id(text)) {
        out = static_cast<gid_t>(*n);
        return {};
    }
    if (auto e = plain_name(text); !e.empty()) return e;
    struct group gr {};
    if (!lookup_name(std::string(text), ::getgrnam_r, gr))
        return "no group " + quote(text) + " on this host (give a group name or a numeric gid)";
    out = gr.gr_gid;
    return {};
}

std::string file_mode(std::string_view text, unsigned& out) {
    const std::string q = quote(text);
    if (text.empty() || text.size() > 6 ||
        !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '7'; }))
        return q + " is not an octal mode such as \"0660\"";
    unsigned m = 0;
    for (char c : text) m = m * 8 + unsigned(c - '0');
    if (m > 0777) return q + " is more than 0777 (no setuid, setgid or sticky bits)";
    out = m;
    return {};
}

std::string spki_pin(std::string_view text) {
    auto bytes = encoding::base64_decode(text);
    if (!bytes) return quote(text) + " is not base64";
    if (bytes->size() != 32)
        return quote(text) + " decodes to " + std::to_string(bytes->size()) +
               " bytes, not 32 (base64 of the SHA-256 of the SubjectPublicKeyInfo)";
    return {};
}

std::string sha256_hex(std::string_view text) {
    auto bytes = encoding::hex_decode(text);
    if (!bytes || bytes->size() != 32)
        return quote(text) + " is not a SHA-256 fingerprint (64 hex digits, colons allowed)";
    return {};
}

std::string env_name(std::string_view name) {
    auto ok_first = [](char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
    };
    auto ok = [&](char c) { return ok_first(c) || (c >= '0' && c <= '9'); };
    if (name.empty() || !ok_first(name.front()) || !std::all_of(name.begin(), name.end(), ok))
        return quote(name) + " is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)";
    return {};
}

std::string plain_name(std::string_view name) {
    auto ok = [](char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
               c == '-' || c == '_' || c == '.' || c == '~';
    };
    if (name.empty() || name == "." || name == ".." || !std::all_of(name.begin(), name.end(), ok))
        return quote(name) + " is not a plain name (letters, digits, '-', '_', '.', '~')";
    return {};
}

std::string header_name(std::string_view name) {
    static constexpr std::string_view tchar_extra = "!#$%&'*+-.^_`|~";
    auto ok = [](char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
               tchar_extra.find(c) != std::string_view::npos;
    };
    if (name.empty() || !std::all_of(name.begin(), name.end(), ok))
        return quote(name) + " is not an HTTP header name";
    return {};
}

std::string header_value(std::string_view value) {
    if (std::any_of(value.begin(), value.end(),
                    [](unsigned char c) { return (c < 0x20 && c != '\t') || c == 0x7f; }))
        return "the value contains control characters (CR/LF are not allowed in headers)";
    return {};
}

std::string oauth_scope(std::string_view scope) {
    std::size_t start = 0;
    while (start <= scope.size()) {
        auto sp = scope.find(' ', start);
        std::string_view tok = scope.substr(start, sp == std::string_view::npos ? sp : sp - start);
        if (tok.empty() || !std::all_of(tok.begin(), tok.end(), [](unsigned char c) {
                return c == 0x21 || (c >= 0x23 && c <= 0x5b) || (c >= 0x5d && c <= 0x7e);
            }))
            return quote(scope) +
                   " is not an OAuth scope (tokens separated by single spaces; no quotes or "
                   "backslashes)";
        if (sp == std::string_view::npos) break;
        start = sp + 1;
    }
    return {};
}

std::string did_you_mean(std::string_view unknown, const std::vector<std::string_view>& known) {
    std::string_view best;
    std::size_t best_d = SIZE_MAX;
    for (auto k : known) {
        std::size_t d = edit_distance(unknown, k);
        if (d < best_d) {
            best_d = d;
            best = k;
        }
    }
    std::size_t limit = std::max<std::size_t>(1, std::min<std::size_t>(3, best.size() / 3));
    if (best.empty() || best_d > limit) return {};
    return std::string(best);
}

}  // namespace mtls::config::checks
