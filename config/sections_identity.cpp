// [pkcs11], [key], [est], [renewal]: where the key lives and how the certificate is obtained.
#include "config/checks.hpp"
#include "config/csr_attributes.hpp"
#include "config/duration.hpp"
#include "config/sections.hpp"

#include <algorithm>
#include <optional>

namespace mtls::config::detail {

using checks::quote;

Section section(Section& root, std::string_view key, bool required, std::string_view hint) {
    if (auto s = root.table(key)) return *s;
    if (required && !root.has(key)) {
        std::string msg = "required section [" + std::string(key) + "] is missing";
        if (!hint.empty()) msg += " (" + std::string(hint) + ")";
        root.errors().add(0, std::string(key), msg);
    }
    return root.absent(key);
}

std::string pkcs11_uri(std::string_view uri) {
    if (uri.substr(0, 7) != "pkcs11:")
        return quote(uri) + " is not a pkcs11: URI (RFC 7512), e.g. \"pkcs11:token=mtls-agent\"";
    if (uri.find("pin-value=") != std::string_view::npos)
        return "the URI carries a pin-value; remove it and give the PIN through pkcs11.pin_file, "
               "pin_env or pin_credential";
    return {};
}

void read_pkcs11(Section& root, Config& c) {
    Section s = section(root, "pkcs11", true, "module, token and a PIN source");
    auto& p = c.pkcs11;
    if (s.str("module", p.module, Need::required,
              "the PKCS#11 module, e.g. module = \"/usr/lib/softhsm/libsofthsm2.so\""))
        s.check("module", checks::readable_file(p.module, false));
    if (s.str("token", p.token_uri, Need::required,
              "a pkcs11: URI naming the token, e.g. token = \"pkcs11:token=mtls-agent\""))
        s.check("token", pkcs11_uri(p.token_uri));

    std::string value;
    switch (s.one_of({"pin_file", "pin_env", "pin_credential"}, true,
                     "where the token's user PIN comes from; never the PIN itself")) {
        case 0:
            p.pin_source = Pkcs11::PinSource::file;
            if (s.str("pin_file", p.pin_file) &&
                s.check("pin_file", checks::absolute_path(p.pin_file)))
                s.check("pin_file", checks::readable_file(p.pin_file, true));
            break;
        case 1:
            p.pin_source = Pkcs11::PinSource::env;
            if (s.str("pin_env", p.pin_env)) s.check("pin_env", checks::env_name(p.pin_env));
            break;
        case 2:
            p.pin_source = Pkcs11::PinSource::credential;
            if (s.str("pin_credential", p.pin_credential))
                s.check("pin_credential", checks::plain_name(p.pin_credential));
            break;
        default:
            break;
    }
    s.finish();
}

void read_key(Section& root, Config& c) {
    Section s = section(root, "key", false);
    auto& k = c.key;
    // type: one key type, or "from-server" (the EST server's csrattrs choose among the
    // token's types); types: the acceptable ones, the first being the default.
    std::optional<KeyType> fixed;
    const bool type_ok = s.enumeration("type", fixed,
                                       {{"ec-p256", KeyType::ec_p256},
                                        {"ec-p384", KeyType::ec_p384},
                                        {"rsa-2048", KeyType::rsa_2048},
                                        {"rsa-3072", KeyType::rsa_3072},
                                        {"from-server", std::nullopt}});
    if (type_ok) {
        k.from_server = !fixed;
        if (fixed) k.type = *fixed;
    }
    std::vector<std::string> names;
    std::vector<int> lines;
    if (s.str_list("types", names, &lines)) {
        if (names.empty())
            s.error("types", "is empty: list the acceptable key types, or remove it");
        if (type_ok && fixed)
            s.error("types", "conflicts with key.type = \"" + std::string(to_string(*fixed)) +
                                 "\": with a list of acceptable types, leave type out or set "
                                 "type = \"from-server\"");
        for (std::size_t i = 0; i < names.size(); ++i) {
            const std::string where = s.key_path("types") + "[" + std::to_string(i) + "]";
            std::optional<KeyType> t;
            for (auto kt :
                 {KeyType::ec_p256, KeyType::ec_p384, KeyType::rsa_2048, KeyType::rsa_3072})
                if (names[i] == to_string(kt)) t = kt;
            if (!t) {
                root.errors().add(lines[i], where,
                                  quote(names[i]) +
                                      " is not one of \"ec-p256\", \"ec-p384\", \"rsa-2048\", "
                                      "\"rsa-3072\"");
            } else if (std::find(k.types.begin(), k.types.end(), *t) != k.types.end()) {
                root.errors().add(lines[i], where, quote(names[i]) + " is listed twice");
            } else {
                k.types.push_back(*t);
            }
        }
        if (!k.types.empty()) k.type = k.types.front();
    }
    s.boolean("rekey_on_renew", k.rekey_on_renew);
    if (s.str("label_prefix", k.label_prefix)) {
        if (s.check("label_prefix", checks::plain_name(k.label_prefix)) &&
            k.label_prefix.size() > 32)
            s.error("label_prefix", quote(k.label_prefix) + " is longer than 32 characters");
    }
    s.seconds("retire_grace", k.retire_grace, std::chrono::seconds(0));
    s.finish();
}

void checked_list(Section& root, Section& s, std::string_view key, std::vector<std::string>& out,
                  std::string (*check)(std::string_view)) {
    std::vector<int> lines;
    if (!s.str_list(key, out, &lines)) return;
    for (std::size_t i = 0; i < out.size(); ++i)
        if (auto problem = check(out[i]); !problem.empty())
            root.errors().add(lines[i], s.key_path(key) + "[" + std::to_string(i) + "]", problem);
}

namespace {
// X.520 upper bounds for the subject attributes we set.
void subject_attr(Section& s, std::string_view key, std::string& out, Need need,
                  std::string_view hint = {}) {
    if (s.str(key, out, need, hint) && out.size() > 64)
        s.error(key, quote(out) + " is longer than 64 characters (X.520 limit)");
}
// Each element of a string list checked by `check` (an empty answer: fine).
// The subject (RFC 5280 §4.1.2.6 attributes partners register for tls_client_auth) and the
// subjectAltName entries of the first enrollment.
void read_subject(Section& root, Section& s, Est& e) {
    subject_attr(s, "common_name", e.subject_cn, Need::required,
                 "the certificate's subject CN, e.g. common_name = \"host-17.example\"");
    subject_attr(s, "organization", e.subject_o, Need::optional);
    if (s.str("country", e.subject_c)) s.check("country", checks::country_code(e.subject_c));
    subject_attr(s, "state", e.subject_st, Need::optional);
    subject_attr(s, "locality", e.subject_l, Need::optional);
    if (s.str("serial_number", e.subject_serial))
        s.check("serial_number", checks::printable_string(e.subject_serial, 64));
    // organizational_unit: one string, or several (one OU each, in this order).
    if (const toml::node* ou = s.get("organizational_unit"); ou && ou->is_string()) {
        std::string one;
        subject_attr(s, "organizational_unit", one, Need::optional);
        e.subject_ou = {one};
    } else if (ou) {
        checked_list(root, s, "organizational_unit", e.subject_ou, [](std::string_view v) {
            return v.empty() || v.size() > 64
                       ? std::string("must be 1 to 64 characters (X.520 limit)")
                       : std::string();
        });
    }
    checked_list(root, s, "dns_names", e.san_dns, checks::dns_name);
    checked_list(root, s, "ip_addresses", e.san_ip, checks::ip_address);
    checked_list(root, s, "uris", e.san_uri, checks::san_uri);
    checked_list(root, s, "emails", e.san_email, checks::email_address);
}

}  // namespace

namespace {
// [est.csr_attributes]: what to put in the CSR when the EST server's csrattrs ask for it.
void read_csr_attributes(Section& s, Est& e) {
    const toml::node* n = s.get("csr_attributes");
    if (!n) return;
    const toml::table* t = n->as_table();
    if (!t) {
        s.error("csr_attributes",
                "expected a table of OID or name = \"value\", got " + std::string(type_name(*n)));
        return;
    }
    Errors& errs = s.errors();
    for (auto&& [k, v] : *t) {
        const std::string key(k.str());
        const std::string where = s.key_path("csr_attributes") + "." + key;
        const int line = detail::line_of(k);
        const std::string oid = csr_attribute_oid(key);
        if (oid.empty()) {
            errs.add(line, where,
                     "is neither an OID in dotted form (e.g. \"1.3.6.1.1.1.1.22\") nor a known "
                     "attribute or extension name (e.g. macAddress, keyUsage)");
            continue;
        }
        const std::string name = csr_attribute_name(oid);
        if (name == "challengePassword" || name == "extReq" || name == "msExtReq") {
            errs.add(line, where, "is set by the agent itself and cannot be configured");
            continue;
        }
        if (name == "subjectAltName") {
            errs.add(line, where, "is made from est.dns_names; set the names there");
            continue;
        }
        const auto* value = v.as_string();
        if (!value) {
            errs.add(line, where, "expected a string, got " + std::string(type_name(v)));
            continue;
        }
        if (auto problem = csr_attribute_value_problem(oid, value->get()); !problem.empty()) {
            errs.add(line, where, problem);
            continue;
        }
        auto dup = std::find_if(e.csr_attributes.begin(), e.csr_attributes.end(),
                                [&](const CsrAttribute& a) { return a.oid == oid; });
        if (dup != e.csr_attributes.end()) {
            errs.add(line, where, "names the same type as est.csr_attributes." + dup->key);
            continue;
        }
        e.csr_attributes.push_back({key, oid, value->get()});
    }
}
}  // namespace

void read_est(Section& root, Config& c) {
    Section s = section(root, "est", true, "server, trust_anchor or pinned_sha256, common_name");
    auto& e = c.est;
    if (s.str("server", e.server_url, Need::required,
              "the EST server's base URL, e.g. server = \"https://est.example:8443\""))
        s.check("server", checks::https_url(e.server_url));
    if (s.str("ca_label", e.ca_label) && !e.ca_label.empty())
        s.check("ca_label", checks::plain_name(e.ca_label));

    switch (s.one_of({"trust_anchor", "pinned_sha256"}, true,
                     "how the EST server's certificate is verified")) {
        case 0:
            if (s.str("trust_anchor", e.trust_anchor_file))
                s.check("trust_anchor", checks::readable_file(e.trust_anchor_file, false));
            break;
        case 1:
            if (s.str("pinned_sha256", e.pinned_sha256))
                s.check("pinned_sha256", checks::sha256_hex(e.pinned_sha256));
            break;
        default:
            break;
    }

    s.enumeration("auth", e.auth,
                  {{"basic", Est::Auth::basic},
                   {"digest", Est::Auth::digest},
                   {"bootstrap-cert", Est::Auth::bootstrap_cert}});
    if (e.auth != Est::Auth::bootstrap_cert) {
        if (s.str("basic_credentials", e.basic_credentials_file, Need::required,
                  e.auth == Est::Auth::basic
                      ? "with auth = \"basic\": a file holding user:password, mode 0600"
                      : "with auth = \"digest\": a file holding user:password, mode 0600"))
            s.check("basic_credentials", checks::readable_file(e.basic_credentials_file, true));
        for (auto key : {"bootstrap_cert", "bootstrap_key"}) {
            s.get(key);
            if (s.has(key))
                s.error(key,
                        "only used with auth = \"bootstrap-cert\"; remove it or change est.auth");
        }
    } else {
        if (s.str("bootstrap_cert", e.bootstrap_cert_file, Need::required,
                  "with auth = \"bootstrap-cert\": the PEM certificate used for the first "
                  "enrollment"))
            s.check("bootstrap_cert", checks::readable_file(e.bootstrap_cert_file, false));
        if (s.str("bootstrap_key", e.bootstrap_key_uri, Need::required,
                  "with auth = \"bootstrap-cert\": a pkcs11: URI of the bootstrap key"))
            s.check("bootstrap_key", pkcs11_uri(e.bootstrap_key_uri));
        // Optional here: answers a server that asks for HTTP authentication in addition to
        // the certificate (RFC 7030 §3.2.3), never sent unasked.
        if (s.str("basic_credentials", e.basic_credentials_file) &&
            !e.basic_credentials_file.empty())
            s.check("basic_credentials", checks::readable_file(e.basic_credentials_file, true));
    }

    read_subject(root, s, e);
    s.boolean("proof_of_possession", e.pop_linking);
    read_revocation_policy(s, e.revocation);
    s.seconds("retry_after_cap", e.retry_after_cap, std::chrono::seconds(1));
    s.seconds("timeout", e.timeout, std::chrono::seconds(1));
    s.unsigned_int("max_response_bytes", e.max_response_bytes, 1024, std::int64_t(1) << 30);
    read_csr_attributes(s, e);
    s.finish();
}

void read_renewal(Section& root, Config& c) {
    Section s = section(root, "renewal", false);
    auto& r = c.renewal;
    double v = 0;
    if (s.number("at_fraction", v)) {
        if (v > 0 && v < 1)
            r.at_fraction = v;
        else
            s.error("at_fraction",
                    checks::number(v) +
                        " is out of range: it must be greater than 0 and "
                        "less than 1 (e.g. 0.6667 renews after two thirds of the lifetime)");
    }
    bool jitter_ok = true;
    if (s.number("jitter", v)) {
        if (v >= 0 && v < 0.5)
            r.jitter = v;
        else {
            jitter_ok = false;
            s.error("jitter", checks::number(v) +
                                  " is out of range: it must be at least 0 and less than 0.5");
        }
    }
    if (jitter_ok && (r.at_fraction - r.jitter <= 0 || r.at_fraction + r.jitter >= 1))
        s.error(
            s.has("jitter") ? "jitter" : "at_fraction",
            "at_fraction ± jitter must stay between 0 and 1, or renewal could fall after expiry");
    bool a = s.seconds("backoff_initial", r.backoff_initial, std::chrono::seconds(1));
    bool b = s.seconds("backoff_max", r.backoff_max, std::chrono::seconds(1));
    if ((a || b) && r.backoff_initial > r.backoff_max)
        s.error(a ? "backoff_initial" : "backoff_max",
                "backoff_initial (" + format_duration(r.backoff_initial) +
                    ") is longer than backoff_max (" + format_duration(r.backoff_max) + ")");
    s.enumeration("revocation_check", r.revocation_check,
                  {{"ocsp-then-crl", Renewal::RevocationCheck::ocsp_then_crl},
                   {"off", Renewal::RevocationCheck::off}});
    if (s.seconds("revocation_check_interval", r.revocation_check_interval,
                  std::chrono::seconds(1)) &&
        r.revocation_check_interval > std::chrono::hours(24))
        s.error("revocation_check_interval",
                format_duration(r.revocation_check_interval) +
                    " is too long: at most \"1d\" (a revoked certificate would be used that long)");
    read_on_renew(s, r);
    s.finish();
}

}  // namespace mtls::config::detail
