// [oauth] with [[oauth.profiles]], and [[routes]]: who we get tokens from and where calls go.
#include "config/checks.hpp"
#include "config/sections.hpp"

#include <algorithm>
#include <map>
#include "common/text.hpp"

namespace mtls::config::detail {

using checks::quote;

namespace {

using text::lower;

// Remembers the first line of each value; reports a later duplicate at its own line.
class Unique {
  public:
    explicit Unique(std::string what) : what_(std::move(what)) {}
    void add(Section& s, std::string_view key, const std::string& value) {
        auto [it, fresh] = first_.emplace(value, s.line_of(key));
        if (!fresh)
            s.error(key, "duplicate " + what_ + " " + quote(value) + " (first at line " +
                             std::to_string(it->second) + ")");
    }

  private:
    std::string what_;
    std::map<std::string, int> first_;
};

// Headers the proxy owns: framing and hop-by-hop fields.
bool proxy_owned(const std::string& lower_name) {
    static const char* const owned[] = {"host",       "content-length", "transfer-encoding",
                                        "connection", "keep-alive",     "proxy-connection",
                                        "te",         "trailer",        "upgrade"};
    return std::any_of(std::begin(owned), std::end(owned),
                       [&](const char* o) { return lower_name == o; });
}

void read_set_headers(Section& r, Route& route) {
    const toml::node* n = r.get("set_headers");
    if (!n) return;
    const toml::table* t = n->as_table();
    if (!t) {
        r.error("set_headers",
                "expected a table of header = \"value\", got " + std::string(type_name(*n)));
        return;
    }
    Errors& errs = r.errors();
    std::map<std::string, int> seen;  // case-insensitive duplicates
    for (auto&& [k, v] : *t) {
        std::string name(k.str());
        std::string where = r.key_path("set_headers") + "." + name;
        int line = detail::line_of(k);
        if (auto problem = checks::header_name(name); !problem.empty()) {
            errs.add(line, where, problem);
            continue;
        }
        const auto* value = v.as_string();
        if (!value) {
            errs.add(line, where, "expected a string, got " + std::string(type_name(v)));
            continue;
        }
        if (auto problem = checks::header_value(value->get()); !problem.empty()) {
            errs.add(line, where, problem);
            continue;
        }
        std::string lname = lower(name);
        if (proxy_owned(lname)) {
            errs.add(line, where, "is managed by the proxy and cannot be set");
            continue;
        }
        if (lname == "authorization" && !route.token_profile.empty()) {
            errs.add(line, where,
                     "conflicts with token_profile: the proxy sets Authorization from the token");
            continue;
        }
        if (auto [it, fresh] = seen.emplace(lname, line); !fresh) {
            errs.add(line, where,
                     "duplicate header (first at line " + std::to_string(it->second) + ")");
            continue;
        }
        route.set_headers[name] = value->get();
    }
}

void read_timeouts(Section& r, Route::Timeouts& t) {
    auto s = r.table("timeouts");
    if (!s) return;
    using std::chrono::milliseconds;
    s->duration("connect", t.connect, milliseconds(1));
    s->duration("handshake", t.handshake, milliseconds(1));
    s->duration("response_header", t.response_header, milliseconds(1));
    s->duration("idle", t.idle, milliseconds(1));
    s->duration("total", t.total, milliseconds(0));
    s->finish();
}

std::string path_prefix(std::string_view p) {
    if (p.empty() || p.front() != '/' || p.back() != '/')
        return quote(p) + " must start and end with '/', e.g. \"/partner-a/\"";
    if (std::any_of(p.begin(), p.end(), [](unsigned char ch) {
            return ch <= 0x20 || ch == 0x7f || ch == '?' || ch == '#';
        }))
        return quote(p) + " must not contain spaces, control characters, '?' or '#'";
    return {};
}

}  // namespace

void read_oauth(Section& root, Config& c) {
    Section s = section(root, "oauth", false);
    auto& o = c.oauth;
    auto tables = s.array_of_tables("profiles");
    Unique names("profile name");
    for (std::size_t i = 0; i < tables.size(); ++i) {
        if (!tables[i]) continue;
        Section p(root.errors(), tables[i], s.key_path("profiles") + "[" + std::to_string(i) + "]");
        TokenProfile prof;
        if (p.str("name", prof.name, Need::required, "routes refer to the profile by this name")) {
            if (p.check("name", checks::plain_name(prof.name))) names.add(p, "name", prof.name);
        }
        p.str("client_id", prof.client_id, Need::required,
              "the client_id registered at the authorization server");
        p.enumeration("auth_method", prof.auth_method,
                      {{"tls_client_auth", TokenProfile::AuthMethod::tls_client_auth},
                       {"self_signed_tls_client_auth",
                        TokenProfile::AuthMethod::self_signed_tls_client_auth}});
        if (p.str("scope", prof.scope) && !prof.scope.empty())
            p.check("scope", checks::oauth_scope(prof.scope));
        std::vector<int> lines;
        if (p.str_list("resources", prof.resources, &lines)) {
            for (std::size_t j = 0; j < prof.resources.size(); ++j) {
                if (auto problem = checks::https_url(prof.resources[j]); !problem.empty())
                    root.errors().add(
                        lines[j], p.key_path("resources") + "[" + std::to_string(j) + "]", problem);
            }
        }
        p.str("audience", prof.audience);
        read_revocation_policy(p, prof.revocation);
        p.finish();
        o.profiles.push_back(std::move(prof));
    }

    // With profiles, the token endpoint must be known: by discovery or given directly.
    switch (s.one_of({"issuer", "token_endpoint"}, !tables.empty(),
                     "[[oauth.profiles]] need the authorization server's token endpoint")) {
        case 0:
            if (s.str("issuer", o.issuer)) s.check("issuer", checks::https_url(o.issuer));
            break;
        case 1:
            if (s.str("token_endpoint", o.token_endpoint))
                s.check("token_endpoint", checks::https_url(o.token_endpoint));
            break;
        default:
            break;
    }
    if (s.str("ca_file", o.ca_file) && !o.ca_file.empty())
        s.check("ca_file", checks::readable_file(o.ca_file, false));
    std::chrono::seconds skew{};
    if (s.seconds("refresh_skew", skew, std::chrono::seconds(0))) o.refresh_skew = skew;
    s.seconds("timeout", o.timeout, std::chrono::seconds(1));
    s.finish();
}

void read_routes(Section& root, Config& c) {
    root.get("routes");
    if (!root.has("routes")) {
        root.errors().add(
            0, "routes",
            "at least one [[routes]] entry is required (where local calls are forwarded)");
        return;
    }
    auto tables = root.array_of_tables("routes");
    if (tables.empty() && root.get("routes")->is_array())
        root.error("routes",
                   "at least one [[routes]] entry is required (where local calls are forwarded)");
    Unique names("route name"), prefixes("path_prefix"), hosts("host");
    for (std::size_t i = 0; i < tables.size(); ++i) {
        if (!tables[i]) continue;
        Section r(root.errors(), tables[i], "routes[" + std::to_string(i) + "]");
        Route route;
        if (r.str("name", route.name, Need::required,
                  "a short name for logs and metrics, e.g. \"partner-a\""))
            if (r.check("name", checks::plain_name(route.name))) names.add(r, "name", route.name);

        switch (r.one_of({"path_prefix", "host"}, true, "which local calls take this route")) {
            case 0:
                if (r.str("path_prefix", route.path_prefix) &&
                    r.check("path_prefix", path_prefix(route.path_prefix)))
                    prefixes.add(r, "path_prefix", route.path_prefix);
                break;
            case 1:
                if (r.str("host", route.host) && r.check("host", checks::dns_name(route.host))) {
                    route.host = lower(route.host);
                    hosts.add(r, "host", route.host);
                }
                break;
            default:
                break;
        }

        if (r.str("upstream", route.upstream, Need::required,
                  "the partner's base URL, e.g. upstream = \"https://api.partner-a.example/v2/\""))
            r.check("upstream", checks::https_url(route.upstream));
        if (r.str("ca_file", route.ca_file) && !route.ca_file.empty())
            r.check("ca_file", checks::readable_file(route.ca_file, false));
        std::vector<int> lines;
        if (r.str_list("spki_pins", route.spki_pins, &lines)) {
            for (std::size_t j = 0; j < route.spki_pins.size(); ++j) {
                if (auto problem = checks::spki_pin(route.spki_pins[j]); !problem.empty())
                    root.errors().add(
                        lines[j], r.key_path("spki_pins") + "[" + std::to_string(j) + "]", problem);
            }
        }
        if (r.str("token_profile", route.token_profile) && !route.token_profile.empty()) {
            const auto& profiles = c.oauth.profiles;
            bool found = std::any_of(profiles.begin(), profiles.end(), [&](const TokenProfile& p) {
                return p.name == route.token_profile;
            });
            if (!found) {
                std::string known;
                for (std::size_t k = 0; k < profiles.size(); ++k) {
                    bool repeated = std::any_of(
                        profiles.begin(), profiles.begin() + k,
                        [&](const TokenProfile& p) { return p.name == profiles[k].name; });
                    if (!repeated) known += (known.empty() ? "" : ", ") + quote(profiles[k].name);
                }
                r.error(
                    "token_profile",
                    quote(route.token_profile) + " is not a profile in [[oauth.profiles]] (" +
                        (known.empty() ? std::string("none are defined") : "defined: " + known) +
                        ")");
            }
        }
        read_set_headers(r, route);
        r.enumeration("client_authorization", route.client_authorization,
                      {{"replace", Route::ClientAuthorization::replace},
                       {"reject", Route::ClientAuthorization::reject}});
        r.boolean("add_forwarded", route.add_forwarded);
        r.boolean("allow_ambiguous_paths", route.allow_ambiguous_paths);
        r.enumeration("tls_min_version", route.tls_min_version,
                      {{"1.3", std::string("1.3")}, {"1.2", std::string("1.2")}});
        r.unsigned_int("max_request_body", route.max_request_body, 0, INT64_MAX);
        r.unsigned_int("pool_max", route.pool_max, 1, 10000);
        read_revocation_policy(r, route.revocation);
        std::vector<std::uint32_t> ids;
        if (r.id_list("allowed_uids", ids)) route.allowed_uids.assign(ids.begin(), ids.end());
        if (r.id_list("allowed_gids", ids)) route.allowed_gids.assign(ids.begin(), ids.end());
        read_timeouts(r, route.timeouts);
        r.finish();
        c.routes.push_back(std::move(route));
    }
}

void read_revocation_policy(Section& s, RevocationPolicy& out) {
    s.enumeration("revocation", out,
                  {{"off", RevocationPolicy::off},
                   {"soft-fail", RevocationPolicy::soft_fail},
                   {"hard-fail", RevocationPolicy::hard_fail}});
}

void read_revocation(Section& root, Config& c) {
    Section s = section(root, "revocation", false);
    auto& r = c.revocation;
    std::vector<int> lines;
    if (s.str_list("crl_files", r.crl_files, &lines)) {
        for (std::size_t j = 0; j < r.crl_files.size(); ++j) {
            auto problem = checks::absolute_path(r.crl_files[j]);
            if (problem.empty()) problem = checks::readable_file(r.crl_files[j], false);
            if (!problem.empty())
                root.errors().add(lines[j], s.key_path("crl_files") + "[" + std::to_string(j) + "]",
                                  problem);
        }
    }
    s.seconds("max_cache_age", r.max_cache_age, std::chrono::seconds(1));
    s.duration("fetch_timeout", r.fetch_timeout, std::chrono::milliseconds(100));
    s.finish();
}

}  // namespace mtls::config::detail
