// The agent's configuration: typed structs, loaded from TOML (toml++) and validated.
// Every error names the file, line, key and problem, e.g.
//   agent.toml:14: routes[1].upstream: "htp://x" is not an https URL
// Unknown keys are errors. See config/mtls-agent.toml for the documented sample and
// README.md "Configuration reference" for the same in prose.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace mtls::config {

using Seconds = std::chrono::seconds;
using Millis = std::chrono::milliseconds;

enum class KeyType { ec_p256, ec_p384, rsa_2048, rsa_3072 };
const char* to_string(KeyType t);  // "ec-p256", …

// listener.workers when not set: the number of CPUs (1 when unknown), at most 16.
std::size_t default_workers();

// [pkcs11]
struct Pkcs11 {
    std::string module;           // module = "/usr/lib/softhsm/libsofthsm2.so"
    std::string token_uri;        // token = "pkcs11:token=mtls-agent"
    enum class PinSource { file, env, credential } pin_source = PinSource::file;
    std::string pin_file;         // pin_file = "/etc/mtls-agent/pin"        (exactly one of
    std::string pin_env;          // pin_env = "MTLS_AGENT_PIN"               these three)
    std::string pin_credential;   // pin_credential = "token-pin" ($CREDENTIALS_DIRECTORY/…)
};

// [key]
struct KeyPolicy {
    KeyType type = KeyType::ec_p256;    // type = "ec-p256" | "ec-p384" | "rsa-2048" | "rsa-3072"
                                        //   (with from_server or types: the default type)
    bool from_server = false;           // type = "from-server": the EST server's csrattrs pick
    std::vector<KeyType> types;         // types = ["ec-p384", "ec-p256"]: acceptable, 1st default
    bool rekey_on_renew = true;         // rekey_on_renew = true
    // label_prefix: CKA_LABEL = "<prefix>-<instance>-<time>-<nn>"
    std::string label_prefix = "mtls-agent";
    Seconds retire_grace{120};          // retire_grace = "2m": old key kept after a switch
};

// [est.csr_attributes] "1.3.6.1.1.1.1.22" = "00:16:3e:12:34:56" (or macAddress = "…")
struct CsrAttribute {
    std::string key;    // as written in the file (a name or a dotted OID)
    std::string oid;    // dotted form
    std::string value;  // the text, or "DER:<hex>" for a value given as DER
};

// [est]
// Whether and how the other side's certificate chain is checked for revocation (OCSP
// stapling, OCSP, CRL; docs/revocation.md): off; soft-fail (never refuses: a revoked chain
// or no answer is logged, counted and shown, and the connection proceeds); hard-fail (only a verified "good" for
// every certificate of the chain lets it through).
enum class RevocationPolicy { off, soft_fail, hard_fail };

struct Est {
    std::string server_url;        // server = "https://est.example:8443" (https only)
    std::string ca_label;          // ca_label = "partner-a"  (optional path segment)
    std::string trust_anchor_file; // trust_anchor = "/etc/mtls-agent/est-ca.pem"   (one of
    std::string pinned_sha256;     // pinned_sha256 = "ab:cd:…" or hex (RFC 7030 4.1.1) these)
    enum class Auth { basic, digest, bootstrap_cert } auth = Auth::basic;  // auth = "basic" | "digest" | "bootstrap-cert"
    // basic_credentials = "/etc/mtls-agent/est-basic" ("user:password"): HTTP credentials for
    // Basic and Digest; required with basic/digest, optional with bootstrap-cert (then only
    // sent when a server challenges). Re-enrollment answers challenges with them.
    std::string basic_credentials_file;
    std::string bootstrap_cert_file;     // bootstrap_cert = "/etc/mtls-agent/bootstrap.pem"
    std::string bootstrap_key_uri;       // bootstrap_key = "pkcs11:object=manufacturer"
    // The subject, in the order the DER name holds it (RFC 4514 prints it reversed:
    // "CN=…,OU=…,O=…,L=…,ST=…,C=US").
    std::string subject_c;               // country = "US" (two letters, ISO 3166)
    std::string subject_st;              // state = "California"
    std::string subject_l;               // locality = "San Francisco"
    std::string subject_o;               // organization = "Example Corp"
    std::vector<std::string> subject_ou; // organizational_unit = "payments" or ["a", "b"]
    std::string subject_cn;              // common_name = "host-17.example"  (required)
    std::string subject_serial;          // serial_number = "A1234" (X.520 serialNumber)
    std::vector<std::string> san_dns;    // dns_names = ["host-17.example"]
    std::vector<std::string> san_ip;     // ip_addresses = ["192.0.2.17", "2001:db8::17"]
    std::vector<std::string> san_uri;    // uris = ["spiffe://example/host-17"]
    std::vector<std::string> san_email;  // emails = ["ops@example.com"]
    bool pop_linking = false;            // proof_of_possession = false (tls-unique/exporter)
    Seconds retry_after_cap{300};        // retry_after_cap = "5m"
    Seconds timeout{30};                 // timeout = "30s"
    std::size_t max_response_bytes = 1u << 20;  // max_response_bytes = 1048576
    std::vector<CsrAttribute> csr_attributes;    // [est.csr_attributes], sorted by key
    RevocationPolicy revocation = RevocationPolicy::soft_fail;  // revocation = "soft-fail"
};

// [renewal]
struct Renewal {
    double at_fraction = 2.0 / 3.0;  // at_fraction = 0.6667: renew at this part of the lifetime
    double jitter = 0.05;            // jitter = 0.05: ± this part of the lifetime, random
    Seconds backoff_initial{5};      // backoff_initial = "5s"
    Seconds backoff_max{600};        // backoff_max = "10m"
    // on_renew = ["/usr/bin/systemctl", "reload", "nginx"]: run (no shell) after the [export]
    // files were written; argv[0] an absolute path. Empty: nothing is run.
    std::vector<std::string> on_renew;
    Millis on_renew_timeout{30000};  // on_renew_timeout = "30s" (then SIGTERM, SIGKILL)
    // revocation_check = "ocsp-then-crl" | "off": our own certificate and its issuers asked
    // of the CA (the OCSP responder of their AIA, else their CRL distribution points); when
    // revoked, a new key is enrolled with the bootstrap credentials at once.
    enum class RevocationCheck { ocsp_then_crl, off } revocation_check =
        RevocationCheck::ocsp_then_crl;
    Seconds revocation_check_interval{3600};  // revocation_check_interval = "1h" (1s .. 1d)
};

// [export]: the certificate for other apps (never the key: it stays on the token). Each file
// is optional (empty: not written); all are written atomically with `mode` and owner.
struct Export {
    std::string cert;                // cert = "/etc/mtls-agent/export/cert.pem" (leaf)
    std::string chain;               // chain = "…/chain.pem" (intermediates, issuer first)
    std::string fullchain;           // fullchain = "…/fullchain.pem" (leaf + intermediates)
    std::string ca;                  // ca = "…/ca.pem" (the EST server's CA certificates)
    mode_t mode = 0644;              // mode = "0644" (no group/other write)
    std::string owner;               // owner = "nginx" or "33" (empty: the agent's user)
    std::string group;               // group = "ssl-cert" or "112" (empty: the agent's group)
};

// [[oauth.profiles]]
struct TokenProfile {
    std::string name;                // name = "partner-a"
    std::string client_id;           // client_id = "agent-17"
    enum class AuthMethod { tls_client_auth, self_signed_tls_client_auth } auth_method =
        AuthMethod::tls_client_auth;  // auth_method = "tls_client_auth"
    std::string scope;               // scope = "orders:read orders:write"
    std::vector<std::string> resources;  // resources = ["https://api.partner-a.example/"] (RFC 8707)
    std::string audience;            // audience = "partner-a"
    RevocationPolicy revocation = RevocationPolicy::soft_fail;  // revocation = "soft-fail" (the AS)
};

// [oauth]
struct OAuth {
    std::string issuer;              // issuer = "https://as.partner-a.example" (RFC 8414 discovery)
    std::string token_endpoint;      // token_endpoint = "https://…/token"  (instead of issuer)
    std::string ca_file;             // ca_file = "/etc/mtls-agent/as-ca.pem" (AS server CA)
    std::optional<Seconds> refresh_skew;  // refresh_skew = "60s" (default min(60 s, 10 % of lifetime))
    Seconds timeout{15};             // timeout = "15s"
    std::vector<TokenProfile> profiles;
};

// [[routes]]
struct Route {
    std::string name;                // name = "partner-a"
    std::string path_prefix;         // path_prefix = "/partner-a/"   (one of path_prefix / host)
    std::string host;                // host = "partner-a.local"
    std::string upstream;            // upstream = "https://api.partner-a.example/v2/"
    std::string ca_file;             // ca_file = "/etc/mtls-agent/partner-a-ca.pem"
    std::vector<std::string> spki_pins;  // spki_pins = ["base64 SHA-256 of SPKI", …]
    std::string token_profile;       // token_profile = "partner-a" (empty: no token)
    std::map<std::string, std::string> set_headers;  // [routes.set_headers] X-Partner = "17"
    enum class ClientAuthorization { replace, reject } client_authorization =
        ClientAuthorization::replace;  // client_authorization = "replace" | "reject"
    bool add_forwarded = false;      // add_forwarded = false (X-Forwarded-*)
    bool allow_ambiguous_paths = false;  // allow_ambiguous_paths = false ("..;", %2f, %5c, \\)
    std::string tls_min_version = "1.3";  // tls_min_version = "1.3" | "1.2"
    std::uint64_t max_request_body = 0;  // max_request_body = 0 (unlimited, streamed)
    std::size_t pool_max = 32;       // pool_max = 32 idle+busy upstream connections
    RevocationPolicy revocation = RevocationPolicy::soft_fail;  // revocation = "soft-fail"
    std::vector<uid_t> allowed_uids; // allowed_uids = [1000]  (Unix-socket callers only)
    std::vector<gid_t> allowed_gids; // allowed_gids = [1000]
    struct Timeouts {
        Millis connect{5000};          // [routes.timeouts] connect = "5s"
        Millis handshake{5000};        // handshake = "5s"
        Millis response_header{30000}; // response_header = "30s"
        Millis idle{60000};            // idle = "60s" (pooled upstream connection)
        Millis total{0};               // total = "0s" (0: none)
        Millis dns_ttl{30000};         // dns_ttl = "30s" (0: resolve per connection; <= 1h)
    } timeouts;
};

// [listener]
struct Listener {
    std::vector<std::string> addresses{"127.0.0.1:8480", "[::1]:8480"};  // addresses = [...]
    bool allow_non_loopback = false;  // allow_non_loopback = false
    std::string unix_socket;          // unix_socket = "/run/mtls-agent/proxy.sock" (optional)
    mode_t unix_socket_mode = 0660;   // unix_socket_mode = "0660"
    std::size_t max_header_bytes = 16384;  // max_header_bytes = 16384
    std::size_t max_header_count = 100;    // max_header_count = 100
    Millis client_idle{60000};             // client_idle = "60s"
    Millis request_head_timeout{20000};    // request_head_timeout = "20s" (whole head, from its first byte)
    Millis body_idle{30000};               // body_idle = "30s" (between body bytes)
    Millis drain_timeout{30000};           // drain_timeout = "30s" (at stop: in-flight requests' time to finish)
    std::vector<std::string> allowed_hosts;    // allowed_hosts = ["app.internal"] ("*": any Host)
    std::vector<std::string> allowed_origins;  // allowed_origins = ["http://localhost:3000"] ("*": any)
    // max_connections = 0 (0: derived from RLIMIT_NOFILE at start)
    std::size_t max_connections = 0;
    // max_connections_per_caller = 0 (a uid on the Unix socket, an address on TCP; 0: derived)
    std::size_t max_connections_per_caller = 0;
    // workers = 4 (event-loop threads of the proxy, 1 – 64; a restart applies a change)
    std::size_t workers = default_workers();
};

// [admin]
struct Admin {
    std::string socket = "/run/mtls-agent/admin.sock";  // socket = "…"
    mode_t mode = 0660;              // mode = "0660"
    std::string group;               // group = "mtls-admin" (empty: the agent's group)
    std::vector<uid_t> allowed_uids; // allowed_uids = [] (root is always allowed)
    std::vector<gid_t> allowed_gids; // allowed_gids = []
    std::size_t max_connections_per_uid = 8;  // max_connections_per_uid = 8 (not root's, the agent's)
};

// [metrics]
struct Metrics {
    std::string listen;              // listen = "127.0.0.1:9480" (empty: off)
    std::vector<std::string> allowed_hosts;  // allowed_hosts = ["monitor.internal"] ("*": any Host)
};

// [logging]
struct Logging {
    std::string level = "info";      // level = "debug" | "info" | "warning" | "error"
    std::string format = "text";     // format = "text" | "json"
    bool access_log = true;          // access_log = true (the proxy's line per request)
};

// [revocation]: knobs of the revocation checker shared by every target.
struct Revocation {
    std::vector<std::string> crl_files;  // crl_files = ["/etc/mtls-agent/partner-b.crl"] (DER/PEM)
    Seconds max_cache_age{86400};    // max_cache_age = "24h" (an answer is kept until nextUpdate, at most this)
    Millis fetch_timeout{5000};      // fetch_timeout = "5s" (one OCSP or CRL fetch)
};

struct Config {
    std::string source;              // the file it was read from
    std::string state_dir = "/var/lib/mtls-agent";  // [agent] state_dir = "…"
    Pkcs11 pkcs11;
    KeyPolicy key;
    Est est;
    Renewal renewal;
    Export exports;                  // [export]
    OAuth oauth;
    std::vector<Route> routes;
    Listener listener;
    Admin admin;
    Metrics metrics;
    Logging logging;
    Revocation revocation;
};

struct Error {
    std::string file;
    int line = 0;        // 0 when the problem has no single line (e.g. a missing section)
    std::string key;     // "routes[1].upstream"
    std::string message; // "\"htp://x\" is not an https URL"
    std::string to_string() const;  // "agent.toml:14: routes[1].upstream: …"
};

struct LoadResult {
    std::optional<Config> config;    // set only when errors is empty
    std::vector<Error> errors;       // every problem found, in file order
};

LoadResult load_file(const std::string& path);
LoadResult load_string(std::string_view toml_text, const std::string& name);

// The effective config as TOML, secrets redacted (PIN values never appear: only their
// source), for --check-config.
std::string render(const Config& c);

}  // namespace mtls::config
