// render(): the effective configuration as TOML, every default written out. Secrets are
// never in a Config (PINs and EST credentials stay in their files or variables), and
// header values that look like credentials are shown only as a redacted digest.
#include "common/log.hpp"
#include "config/checks.hpp"
#include "config/config.hpp"
#include "config/duration.hpp"

#include <cstdio>
#include <sstream>

namespace mtls::config {

namespace {

std::string toml_string(std::string_view s) {
    static const char hexd[] = "0123456789ABCDEF";
    std::string out = "\"";
    for (unsigned char c : s) {
        switch (c) {
            case '"':
                out += "\\\"";
                break;
            case '\\':
                out += "\\\\";
                break;
            case '\b':
                out += "\\b";
                break;
            case '\t':
                out += "\\t";
                break;
            case '\n':
                out += "\\n";
                break;
            case '\f':
                out += "\\f";
                break;
            case '\r':
                out += "\\r";
                break;
            default:
                if (c < 0x20 || c == 0x7f) {
                    out += "\\u00";
                    out += hexd[c >> 4];
                    out += hexd[c & 15];
                } else {
                    out += char(c);
                }
        }
    }
    return out + "\"";
}

std::string toml_key(std::string_view k) {
    bool bare = !k.empty();
    for (char c : k)
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            bare = false;
    return bare ? std::string(k) : toml_string(k);
}

std::string mode_string(mode_t m) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(m) & 07777u);
    return buf;
}

bool looks_secret(std::string_view header) {
    std::string l(header);
    for (auto& c : l)
        if (c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
    for (const char* word :
         {"auth", "cookie", "token", "secret", "key", "pass", "credential", "session"})
        if (l.find(word) != std::string::npos) return true;
    return false;
}

class Writer {
  public:
    void comment(std::string_view text) { out_ << "# " << text << '\n'; }
    void table(std::string_view header) { out_ << "\n[" << header << "]\n"; }
    void array_table(std::string_view header) { out_ << "\n[[" << header << "]]\n"; }
    void str(std::string_view k, std::string_view v) {
        out_ << toml_key(k) << " = " << toml_string(v) << '\n';
    }
    void boolean(std::string_view k, bool v) {
        out_ << k << " = " << (v ? "true" : "false") << '\n';
    }
    void integer(std::string_view k, std::uint64_t v) { out_ << k << " = " << v << '\n'; }
    void number(std::string_view k, double v) { out_ << k << " = " << checks::number(v) << '\n'; }
    template <class Rep, class Period>
    void duration(std::string_view k, std::chrono::duration<Rep, Period> d) {
        str(k, format_duration(std::chrono::duration_cast<std::chrono::milliseconds>(d)));
    }
    void strings(std::string_view k, const std::vector<std::string>& v) {
        out_ << k << " = [";
        for (std::size_t i = 0; i < v.size(); ++i) out_ << (i ? ", " : "") << toml_string(v[i]);
        out_ << "]\n";
    }
    template <class Id>
    void ids(std::string_view k, const std::vector<Id>& v) {
        out_ << k << " = [";
        for (std::size_t i = 0; i < v.size(); ++i)
            out_ << (i ? ", " : "") << static_cast<std::uint64_t>(v[i]);
        out_ << "]\n";
    }
    std::string text() const { return out_.str(); }

  private:
    std::ostringstream out_;
};

const char* to_string(RevocationPolicy p) {
    return p == RevocationPolicy::off         ? "off"
           : p == RevocationPolicy::hard_fail ? "hard-fail"
                                              : "soft-fail";
}

const char* to_string(Est::Auth a) {
    return a == Est::Auth::basic ? "basic" : a == Est::Auth::digest ? "digest" : "bootstrap-cert";
}
const char* to_string(TokenProfile::AuthMethod m) {
    return m == TokenProfile::AuthMethod::tls_client_auth ? "tls_client_auth"
                                                          : "self_signed_tls_client_auth";
}
const char* to_string(Route::ClientAuthorization a) {
    return a == Route::ClientAuthorization::replace ? "replace" : "reject";
}

}  // namespace

std::string render(const Config& c) {
    Writer w;
    w.comment("mtls-agent effective configuration" +
              (c.source.empty() ? std::string() : " (read from " + c.source + ")"));
    w.comment(
        "Every default is written out. PINs and credentials are not: only where they come from.");

    w.table("agent");
    w.str("state_dir", c.state_dir);

    w.table("pkcs11");
    w.str("module", c.pkcs11.module);
    w.str("token", c.pkcs11.token_uri);
    switch (c.pkcs11.pin_source) {
        case Pkcs11::PinSource::file:
            w.str("pin_file", c.pkcs11.pin_file);
            break;
        case Pkcs11::PinSource::env:
            w.str("pin_env", c.pkcs11.pin_env);
            break;
        case Pkcs11::PinSource::credential:
            w.str("pin_credential", c.pkcs11.pin_credential);
            break;
    }

    w.table("key");
    if (c.key.from_server)
        w.str("type", "from-server");
    else if (c.key.types.empty())
        w.str("type", to_string(c.key.type));
    if (!c.key.types.empty()) {
        std::vector<std::string> types;
        for (auto t : c.key.types) types.emplace_back(to_string(t));
        w.strings("types", types);
    }
    w.boolean("rekey_on_renew", c.key.rekey_on_renew);
    w.str("label_prefix", c.key.label_prefix);
    w.duration("retire_grace", c.key.retire_grace);

    const Est& e = c.est;
    w.table("est");
    w.str("server", e.server_url);
    w.str("ca_label", e.ca_label);
    if (!e.pinned_sha256.empty())
        w.str("pinned_sha256", e.pinned_sha256);
    else
        w.str("trust_anchor", e.trust_anchor_file);
    w.str("auth", to_string(e.auth));
    if (e.auth != Est::Auth::bootstrap_cert) {
        w.str("basic_credentials", e.basic_credentials_file);
    } else {
        w.str("bootstrap_cert", e.bootstrap_cert_file);
        w.str("bootstrap_key", e.bootstrap_key_uri);
        if (!e.basic_credentials_file.empty()) w.str("basic_credentials", e.basic_credentials_file);
    }
    w.str("common_name", e.subject_cn);
    w.str("organization", e.subject_o);
    if (e.subject_ou.size() == 1)
        w.str("organizational_unit", e.subject_ou.front());
    else
        w.strings("organizational_unit", e.subject_ou);
    if (!e.subject_c.empty()) w.str("country", e.subject_c);
    w.str("state", e.subject_st);
    w.str("locality", e.subject_l);
    if (!e.subject_serial.empty()) w.str("serial_number", e.subject_serial);
    w.strings("dns_names", e.san_dns);
    w.strings("ip_addresses", e.san_ip);
    w.strings("uris", e.san_uri);
    w.strings("emails", e.san_email);
    w.boolean("proof_of_possession", e.pop_linking);
    w.duration("retry_after_cap", e.retry_after_cap);
    w.duration("timeout", e.timeout);
    w.integer("max_response_bytes", e.max_response_bytes);
    w.str("revocation", to_string(e.revocation));
    w.table("est.csr_attributes");
    for (const auto& a : e.csr_attributes) w.str(a.key, a.value);

    w.table("renewal");
    w.number("at_fraction", c.renewal.at_fraction);
    w.number("jitter", c.renewal.jitter);
    w.duration("backoff_initial", c.renewal.backoff_initial);
    w.duration("backoff_max", c.renewal.backoff_max);
    w.strings("on_renew", c.renewal.on_renew);
    w.duration("on_renew_timeout", c.renewal.on_renew_timeout);
    w.str("revocation_check",
          c.renewal.revocation_check == Renewal::RevocationCheck::off ? "off" : "ocsp-then-crl");
    w.duration("revocation_check_interval", c.renewal.revocation_check_interval);

    const Export& x = c.exports;
    w.table("export");
    w.str("cert", x.cert);
    w.str("chain", x.chain);
    w.str("fullchain", x.fullchain);
    w.str("ca", x.ca);
    w.str("mode", mode_string(x.mode));
    w.str("owner", x.owner);
    w.str("group", x.group);

    const OAuth& o = c.oauth;
    w.table("oauth");
    if (!o.issuer.empty()) w.str("issuer", o.issuer);
    if (!o.token_endpoint.empty()) w.str("token_endpoint", o.token_endpoint);
    w.str("ca_file", o.ca_file);
    if (o.refresh_skew)
        w.duration("refresh_skew", *o.refresh_skew);
    else
        w.comment("refresh_skew: not set, so min(60s, 10% of each token's lifetime)");
    w.duration("timeout", o.timeout);
    for (const auto& p : o.profiles) {
        w.array_table("oauth.profiles");
        w.str("name", p.name);
        w.str("client_id", p.client_id);
        w.str("auth_method", to_string(p.auth_method));
        w.str("scope", p.scope);
        w.strings("resources", p.resources);
        w.str("audience", p.audience);
        w.str("revocation", to_string(p.revocation));
    }

    for (const auto& r : c.routes) {
        w.array_table("routes");
        w.str("name", r.name);
        if (!r.host.empty())
            w.str("host", r.host);
        else
            w.str("path_prefix", r.path_prefix);
        w.str("upstream", r.upstream);
        w.str("ca_file", r.ca_file);
        w.strings("spki_pins", r.spki_pins);
        w.str("token_profile", r.token_profile);
        w.str("client_authorization", to_string(r.client_authorization));
        w.boolean("add_forwarded", r.add_forwarded);
        w.boolean("allow_ambiguous_paths", r.allow_ambiguous_paths);
        w.str("tls_min_version", r.tls_min_version);
        w.integer("max_request_body", r.max_request_body);
        w.integer("pool_max", r.pool_max);
        w.str("revocation", to_string(r.revocation));
        w.ids("allowed_uids", r.allowed_uids);
        w.ids("allowed_gids", r.allowed_gids);
        w.table("routes.set_headers");
        for (const auto& [name, value] : r.set_headers) {
            // Already-redacted values (a rendered config read back) stay as they are.
            if (looks_secret(name) && value.rfind("(redacted ", 0) != 0)
                w.str(name, "(redacted " + log::redact(value) + ")");
            else
                w.str(name, value);
        }
        w.table("routes.timeouts");
        w.duration("connect", r.timeouts.connect);
        w.duration("handshake", r.timeouts.handshake);
        w.duration("response_header", r.timeouts.response_header);
        w.duration("idle", r.timeouts.idle);
        w.duration("total", r.timeouts.total);
        w.duration("dns_ttl", r.timeouts.dns_ttl);
    }

    const Listener& l = c.listener;
    w.table("listener");
    w.strings("addresses", l.addresses);
    w.boolean("allow_non_loopback", l.allow_non_loopback);
    w.str("unix_socket", l.unix_socket);
    w.str("unix_socket_mode", mode_string(l.unix_socket_mode));
    w.integer("max_header_bytes", l.max_header_bytes);
    w.integer("max_header_count", l.max_header_count);
    w.duration("client_idle", l.client_idle);
    w.duration("request_head_timeout", l.request_head_timeout);
    w.duration("body_idle", l.body_idle);
    w.duration("drain_timeout", l.drain_timeout);
    w.strings("allowed_hosts", l.allowed_hosts);
    w.strings("allowed_origins", l.allowed_origins);
    w.integer("max_connections", l.max_connections);
    w.integer("max_connections_per_caller", l.max_connections_per_caller);
    w.integer("workers", l.workers);

    w.table("admin");
    w.str("socket", c.admin.socket);
    w.str("mode", mode_string(c.admin.mode));
    w.str("group", c.admin.group);
    w.ids("allowed_uids", c.admin.allowed_uids);
    w.ids("allowed_gids", c.admin.allowed_gids);
    w.integer("max_connections_per_uid", c.admin.max_connections_per_uid);

    w.table("metrics");
    w.str("listen", c.metrics.listen);
    w.strings("allowed_hosts", c.metrics.allowed_hosts);

    w.table("logging");
    w.str("level", c.logging.level);
    w.str("format", c.logging.format);
    w.boolean("access_log", c.logging.access_log);

    w.table("revocation");
    w.strings("crl_files", c.revocation.crl_files);
    w.duration("max_cache_age", c.revocation.max_cache_age);
    w.duration("fetch_timeout", c.revocation.fetch_timeout);
    return w.text();
}

}  // namespace mtls::config
