// Value checks used by the loader. Each returns an empty string when the value is fine,
// otherwise the problem in words (without the key: the caller adds file, line and key).
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>
#include <vector>

namespace mtls::config::checks {

// An absolute https URL with a host, no user:password@ part and no #fragment.
std::string https_url(std::string_view url);

// "host:port" or "[v6]:port", host an IP literal or "localhost", port 1..65535.
struct ListenAddress {
    std::string host;  // without brackets
    unsigned port = 0;
    bool loopback = false;
};
std::string listen_address(std::string_view text, ListenAddress& out);

// A DNS host name: dot-separated labels of letters, digits and '-', not starting or ending
// with '-', at most 253 characters.
std::string dns_name(std::string_view name);
// listener.allowed_hosts, metrics.allowed_hosts: "*", a DNS name or an IP address literal (no port, no brackets).
std::string allowed_host(std::string_view text);
// listener.allowed_origins: "*" or a web origin, scheme://host[:port] (RFC 6454), no path.
std::string allowed_origin(std::string_view text);
// An IPv4 or IPv6 address literal (inet_pton), without brackets or prefix length.
std::string ip_address(std::string_view text);
// An absolute URI for a subjectAltName (RFC 3986 scheme ":" …, ASCII, no spaces).
std::string san_uri(std::string_view text);
// An email address for a subjectAltName rfc822Name: local@domain, ASCII, no spaces.
std::string email_address(std::string_view text);
// Two ASCII letters (ISO 3166-1 alpha-2), as X.520 countryName requires.
std::string country_code(std::string_view text);
// Characters of an ASN.1 PrintableString (letters, digits, space and '()+,-./:=?), 1 to `max`.
std::string printable_string(std::string_view text, std::size_t max);

std::string absolute_path(std::string_view path);
// An absolute path that fits a sockaddr_un.
std::string unix_socket_path(std::string_view path);

// The file exists, is a regular file and this process can open it for reading. Opens and
// closes it without reading a byte (PIN and credential files are never read here).
// `secret`: also refuse a file that every user may read.
std::string readable_file(const std::string& path, bool secret);

// An executable regular file (access(X_OK) for this process), by absolute path.
std::string executable_file(const std::string& path);
// The directory that will hold a file the agent writes (`path`'s parent) exists and is a
// directory that other users cannot write to.
std::string existing_parent_dir(const std::string& path);

// A user or group by name or number: "nginx", "33". The id is looked up on this host
// (getpwnam_r / getgrnam_r); a number is taken as it is.
std::string user_id(std::string_view text, uid_t& out);
std::string group_id(std::string_view text, gid_t& out);

// "0660": an octal mode, at most 0777.
std::string file_mode(std::string_view text, unsigned& out);

// base64 of exactly 32 bytes (a SHA-256 of a SubjectPublicKeyInfo).
std::string spki_pin(std::string_view text);
// 64 hex digits, colons allowed.
std::string sha256_hex(std::string_view text);

// An environment variable name: [A-Za-z_][A-Za-z0-9_]*.
std::string env_name(std::string_view name);
// A file name without '/' (a systemd credential name, an EST CA label).
std::string plain_name(std::string_view name);
// An HTTP header field name (RFC 9110 token).
std::string header_name(std::string_view name);
// An HTTP header field value: no control characters except tab.
std::string header_value(std::string_view value);
// An OAuth scope (RFC 6749 3.3): space-separated NQCHAR tokens.
std::string oauth_scope(std::string_view scope);

// The known name closest to `unknown`, if close enough to be a likely typo; else "".
std::string did_you_mean(std::string_view unknown, const std::vector<std::string_view>& known);

// The shortest text that reads back as the same double ("0.05", "0.6667", "1.0").
std::string number(double v);

// Quoted for messages, with control characters escaped.
std::string quote(std::string_view s);

}  // namespace mtls::config::checks
