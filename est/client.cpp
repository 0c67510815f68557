#include "est/client.hpp"

#include <curl/curl.h>
#include <openssl/crypto.h>

#include <algorithm>
#include <condition_variable>
#include <mutex>

#include "common/atomic_file.hpp"
#include "common/encoding.hpp"
#include "common/log.hpp"
#include "common/text.hpp"
#include "est/channel_binding.hpp"
#include "est/csr_extras.hpp"
#include "est/pkcs7.hpp"
#include "revocation/connection_check.hpp"

namespace mtls::est {
namespace {

using text::trim;

std::string key_text(EVP_PKEY* key) {
    const char* name = EVP_PKEY_get0_type_name(key);
    return std::string(name ? name : "?") + "/" + std::to_string(EVP_PKEY_get_bits(key));
}

}  // namespace

// ---- settings and credentials ----------------------------------------------------------

Settings settings_from_config(const config::Est& est) {
    Settings s;
    s.revocation = est.revocation;
    s.server_url = est.server_url;
    s.ca_label = est.ca_label;
    if (!est.trust_anchor_file.empty()) {
        s.trust = http::ServerTrust::from_ca_file(est.trust_anchor_file);
    } else if (!est.pinned_sha256.empty()) {
        auto raw = encoding::hex_decode(est.pinned_sha256);
        if (!raw || raw->size() != 32)
            throw Error(Error::Kind::config,
                        "est.pinned_sha256 must be a SHA-256 fingerprint (64 hex digits, ':' "
                        "separators allowed)");
        s.trust = http::ServerTrust::from_pin(*raw);
    } else {
        throw Error(
            Error::Kind::config,
            "no trust anchor for the EST server: set est.trust_anchor or est.pinned_sha256");
    }
    s.pop_linking = est.pop_linking;
    s.retry_after_cap = est.retry_after_cap;
    s.timeout = est.timeout;
    s.max_response_bytes = est.max_response_bytes;
    s.csr_attributes = est.csr_attributes;
    return s;
}

http::BasicAuth load_basic_credentials(const std::string& path) {
    std::string text;
    try {
        text = files::read_all(path, 4096);
    } catch (const std::exception& e) {
        throw Error(Error::Kind::config,
                    std::string("cannot read est.basic_credentials: ") + e.what());
    }
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
    const auto colon = text.find(':');
    http::BasicAuth auth;
    if (colon == std::string::npos || colon == 0) {
        OPENSSL_cleanse(text.data(), text.size());
        throw Error(Error::Kind::config,
                    "est.basic_credentials file " + path + " must hold one line \"user:password\"");
    }
    auth.user = text.substr(0, colon);
    auth.password = text.substr(colon + 1);
    OPENSSL_cleanse(text.data(), text.size());
    return auth;
}

Credentials credentials_from_config(const config::Est& est, std::string_view operation,
                                    std::optional<http::BasicAuth>& storage) {
    Credentials c;
    switch (est.auth) {
        case config::Est::Auth::basic:
            c.auth_setting = "basic";
            // Basic up front on simpleenroll; re-enrollment answers challenges only.
            c.preemptive_basic = operation == "simpleenroll";
            break;
        case config::Est::Auth::digest:
            c.auth_setting = "digest";
            c.preemptive_basic = false;
            c.schemes = http::auth_digest;
            break;
        case config::Est::Auth::bootstrap_cert:
            c.auth_setting = "bootstrap-cert";
            c.preemptive_basic = false;
            break;
    }
    if (!est.basic_credentials_file.empty()) {
        storage = load_basic_credentials(est.basic_credentials_file);
        c.basic = &*storage;
    }
    return c;
}

// ---- helpers ----------------------------------------------------------------------------

std::optional<std::chrono::seconds> parse_retry_after(std::string_view value,
                                                      std::chrono::system_clock::time_point now) {
    value = trim(value);
    if (value.empty()) return std::nullopt;
    if (std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        if (value.size() > 9) return std::chrono::seconds(999999999);
        return std::chrono::seconds(std::stol(std::string(value)));
    }
    const std::string text(value);
    const time_t when = curl_getdate(text.c_str(), nullptr);
    if (when == -1) return std::nullopt;
    const auto delta = std::chrono::system_clock::from_time_t(when) - now;
    return std::max(std::chrono::seconds(0),
                    std::chrono::duration_cast<std::chrono::seconds>(delta));
}

bool wait_for(std::chrono::milliseconds d, std::stop_token stop) {
    std::mutex m;
    std::condition_variable_any cv;
    std::unique_lock lock(m);
    cv.wait_for(lock, stop, d, [] { return false; });
    return !stop.stop_requested();
}

// ---- Client -----------------------------------------------------------------------------

Client::Client(Settings settings) : settings_(std::move(settings)) {
    std::string_view u = settings_.server_url;
    if (u.substr(0, 8) != "https://")
        throw Error(Error::Kind::config,
                    "est.server must be an https:// URL, got \"" + settings_.server_url + "\"");
    while (!settings_.server_url.empty() && settings_.server_url.back() == '/')
        settings_.server_url.pop_back();
    if (settings_.ca_label.find_first_of("/?#% ") != std::string::npos)
        throw Error(Error::Kind::config,
                    "est.ca_label must be one path segment, got \"" + settings_.ca_label + "\"");
    if (settings_.max_attempts < 1) settings_.max_attempts = 1;
}

std::string Client::url(std::string_view operation) const {
    std::string u = settings_.server_url + "/.well-known/est/";
    if (!settings_.ca_label.empty()) u += settings_.ca_label + "/";
    u += operation;
    return u;
}

http::Options Client::http_options(const Credentials& c) const {
    http::Options o;
    o.trust = settings_.trust;
    o.identity = c.tls;
    o.timeout = settings_.timeout;
    o.connect_timeout =
        std::min<std::chrono::milliseconds>(settings_.timeout, std::chrono::seconds(10));
    o.max_response_bytes = settings_.max_response_bytes;
    o.tls_max = settings_.tls_max;
    o.user_agent = "mtls-agent-est";
    if (settings_.revocation != config::RevocationPolicy::off) {
        const auto policy = settings_.revocation == config::RevocationPolicy::hard_fail
                                ? revocation::Policy::hard_fail
                                : revocation::Policy::soft_fail;
        o.check_connection = [policy](SSL* ssl) {
            try {
                revocation::check_connection(ssl, policy, "est", "EST server");
            } catch (const revocation::Refused& e) {
                throw Error(Error::Kind::untrusted_server, e.what());
            }
        };
    }
    return o;
}

std::vector<ossl::X509Ptr> Client::cacerts() {
    http::Request req;
    req.url = url("cacerts");
    req.headers.push_back({"Accept", "application/pkcs7-mime"});
    http::Response r;
    try {
        http::Session s(http_options({}));
        r = s.perform(req);
    } catch (const http::Error& e) {
        throw transport_error("cacerts", e);
    }
    if (r.status != 200) throw status_error("cacerts", r);
    auto certs = parse_certs_only(r.body, r.header("Content-Type").value_or(""));
    log::info("est.cacerts", {{"url", req.url}, {"certificates", certs.size()}});
    return certs;
}

namespace {

// How `c`'s credentials go on `req`. `digest_retry`: the server refused our preemptive
// Basic and asked for Digest; answer its challenge with Digest only (a fresh probe: libcurl
// would otherwise keep Basic as the scheme picked on this handle).
void set_auth(http::Request& req, const Credentials& c, bool digest_retry = false) {
    req.basic = c.basic;
    if (!c.basic) return;
    if (digest_retry) {
        req.preemptive = false;
        req.auth_schemes = http::auth_digest;
    } else if (c.preemptive_basic && (c.schemes & http::auth_basic)) {
        req.preemptive = true;
        req.auth_schemes = http::auth_basic;
    } else {
        req.preemptive = false;
        req.auth_schemes = c.schemes;
    }
}

// A preemptive Basic request answered 401 with a Digest challenge: answer it (once).
bool wants_digest_instead(const http::Request& req, const http::Response& r, const Credentials& c) {
    return req.basic && req.preemptive && (c.schemes & http::auth_digest) &&
           (r.auth_offered & http::auth_digest);
}

std::string name_text(X509_NAME* name) {
    if (!name) return "";
    ossl::Bio bio(BIO_new(BIO_s_mem()));
    X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253);
    char* data = nullptr;
    long n = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<std::size_t>(n));
}

std::string subject_text(const CsrRequest& r) {
    if (r.copy_names_from) return name_text(X509_get_subject_name(r.copy_names_from));
    // RFC 4514 order: the DER's last RDN first.
    std::string s = r.serial_number.empty() ? "" : "serialNumber=" + r.serial_number + ",";
    s += "CN=" + r.common_name;
    for (auto ou = r.organizational_units.rbegin(); ou != r.organizational_units.rend(); ++ou)
        s += ",OU=" + *ou;
    if (!r.organization.empty()) s += ",O=" + r.organization;
    if (!r.locality.empty()) s += ",L=" + r.locality;
    if (!r.state.empty()) s += ",ST=" + r.state;
    if (!r.country.empty()) s += ",C=" + r.country;
    return s;
}

// GET csrattrs on `session`; `binding` receives the channel binding of its connection.
CsrAttributes fetch_csrattrs(http::Session& session, const std::string& url, const Credentials& c,
                             std::optional<ChannelBinding>* binding) {
    http::Request req;
    req.url = url;
    set_auth(req, c);
    req.headers.push_back({"Accept", "application/csrattrs"});
    http::Response r;
    // The binding of the connection the answer came on (the last one, after a 401).
    const auto remember = [&](SSL* ssl) {
        if (binding) *binding = channel_binding(ssl);
    };
    try {
        r = session.perform(req, remember);
        if (r.status == 401 && wants_digest_instead(req, r, c)) {
            // On a fresh handle: libcurl keeps Basic as the scheme picked on this one and
            // would not answer the Digest challenge.
            set_auth(req, c, true);
            http::Session digest(session.options());
            r = digest.perform(req, remember);
        }
    } catch (const http::Error& e) {
        throw transport_error("csrattrs", e);
    }
    if (r.status == 204 || r.status == 404) return {};
    if (r.status != 200) {
        RequestContext ctx;
        ctx.operation = "csrattrs";
        ctx.client_certificate = c.tls != nullptr;
        ctx.credentials_configured = c.basic != nullptr;
        ctx.auth_setting = c.auth_setting;
        throw status_error(ctx, r);
    }
    return parse_csrattrs(r.body);
}

}  // namespace

CsrAttributes Client::csrattrs(const Credentials& credentials) {
    http::Session s(http_options(credentials));
    auto attrs = fetch_csrattrs(s, url("csrattrs"), credentials, nullptr);
    log::info("est.csrattrs", {{"url", url("csrattrs")}, {"attributes", attrs.describe()}});
    return attrs;
}

EnrollResult Client::simpleenroll(const CsrRequest& request, EVP_PKEY* key,
                                  const Credentials& credentials,
                                  const std::vector<X509*>& ca_certs, std::stop_token stop) {
    return enroll("simpleenroll", request, key, credentials, ca_certs, std::move(stop));
}

EnrollResult Client::simplereenroll(X509* current, EVP_PKEY* new_key,
                                    const Credentials& credentials,
                                    const std::vector<X509*>& ca_certs, std::stop_token stop,
                                    const std::string& digest) {
    if (!current) throw Error(Error::Kind::config, "simplereenroll needs the current certificate");
    if (!credentials.tls)
        throw Error(
            Error::Kind::config,
            "simplereenroll authenticates with the current certificate and key; none given");
    CsrRequest request;
    request.copy_names_from = current;
    request.digest = digest;
    return enroll("simplereenroll", std::move(request), new_key, credentials, ca_certs,
                  std::move(stop));
}

EnrollResult Client::enroll(std::string_view operation, CsrRequest request, EVP_PKEY* key,
                            const Credentials& credentials, const std::vector<X509*>& ca_certs,
                            std::stop_token stop) {
    const std::string op(operation);
    if (!key) throw Error(Error::Kind::config, "EST " + op + ": no key");
    if (!credentials.basic && !credentials.tls)
        throw Error(Error::Kind::config,
                    "EST " + op +
                        ": no credentials (set est.basic_credentials or a bootstrap certificate)");
    EnrollResult result;
    http::Session session(http_options(credentials));
    const std::string enroll_url = url(operation);
    std::string csr_body;  // reused across 202 retries unless PoP linking binds it to a connection

    for (int attempt = 1;; ++attempt) {
        if (stop.stop_requested())
            throw Error(Error::Kind::interrupted, "EST " + op + " interrupted");
        // 1. csrattrs on this connection (and its channel binding).
        std::optional<ChannelBinding> binding;
        const bool want_attrs = settings_.fetch_csrattrs || settings_.pop_linking;
        if (want_attrs) {
            try {
                result.attributes = fetch_csrattrs(session, url("csrattrs"), credentials, &binding);
            } catch (const Error& e) {
                // csrattrs is optional for us unless we need its connection for PoP.
                if (e.kind() == Error::Kind::transport ||
                    e.kind() == Error::Kind::untrusted_server || e.kind() == Error::Kind::config ||
                    settings_.pop_linking)
                    throw;
                log::warn("est.csrattrs_ignored", {{"url", url("csrattrs")}, {"error", e.what()}});
                result.attributes = {};
            }
            if (attempt == 1 && !result.attributes.empty())
                log::info("est.csrattrs", {{"attributes", result.attributes.describe()}});
            for (const auto& u : result.attributes.unhandled)
                if (attempt == 1) log::warn("est.csrattr_not_honoured", {{"attribute", u}});
            if (auto why = key_mismatch(result.attributes, key); !why.empty() && attempt == 1)
                log::warn("est.csrattr_key_mismatch", {{"detail", why}});
        }
        // What [est.csr_attributes] puts in the CSR, and what the server asks that it lacks.
        const auto extras = plan_csr_extras(result.attributes, settings_.csr_attributes);
        if (attempt == 1)
            for (const auto& u : extras.unmet)
                log::warn("est.csrattr_not_supplied", {{"detail", u}});
        const bool pop = settings_.pop_linking || result.attributes.challenge_password;
        if (pop && !binding)
            throw Error(Error::Kind::pop_failed,
                        "EST " + op +
                            ": proof-of-possession linking needs the TLS channel binding, "
                            "but no TLS connection was made");

        // 2. the CSR.
        if (csr_body.empty() || pop) {
            if (!result.attributes.digest.empty()) request.digest = result.attributes.digest;
            request.challenge_password = pop ? encoding::base64(binding->bytes) : std::string();
            request.extra = extras.items;
            auto csr = build_csr(request, key);
            // RFC 7030 §4.2.1 + RFC 2045 §6.8: base64 in lines of 64, each ending in "\n" (a
            // server decoding with a base64 BIO, as libest does, reads nothing from one line).
            csr_body = encoding::base64_lines(csr_der(csr.get()));
            log::info("est.csr", {{"operation", op},
                                  {"key", key_text(key)},
                                  {"digest", request.digest},
                                  {"pop", pop ? binding->type : std::string("no")}});
        }

        // 3. enroll, on the same connection when PoP-linked.
        http::Request req;
        req.method = "POST";
        req.url = enroll_url;
        set_auth(req, credentials);
        req.body = csr_body;
        req.headers = {{"Content-Type", "application/pkcs10"},
                       {"Content-Transfer-Encoding", "base64"},
                       {"Accept", "application/pkcs7-mime"}};
        http::Response r;
        const auto same_connection = [&](SSL* ssl) {
            if (!pop) return;
            auto now = channel_binding(ssl);
            if (now.bytes != binding->bytes)
                throw Error(Error::Kind::pop_failed,
                            "EST " + op + ": the connection changed between csrattrs and " + op +
                                "; proof-of-possession linking needs both on one TLS connection "
                                "(does the server close connections after each request?)");
        };
        try {
            r = session.perform(req, same_connection);
            if (r.status == 401 && wants_digest_instead(req, r, credentials)) {
                // A fresh handle (and so connection), as in fetch_csrattrs; PoP linking then
                // fails with its own message (Basic refused, Digest wanted, PoP required).
                log::info("est.auth_digest", {{"operation", op}});
                set_auth(req, credentials, true);
                http::Session digest(session.options());
                r = digest.perform(req, same_connection);
            }
        } catch (const http::Error& e) {
            throw transport_error(op, e);
        }
        if (pop && !r.connection_reused)
            throw Error(
                Error::Kind::pop_failed,
                "EST " + op +
                    ": a new TLS connection was opened for the enroll request; "
                    "proof-of-possession linking needs the csrattrs connection to be reused");
        result.attempts = attempt;

        if (r.status == 200) {
            auto certs = parse_certs_only(r.body, r.header("Content-Type").value_or(""));
            result.issued = verify_issued(std::move(certs), key, ca_certs);
            result.pop_linked = pop;
            if (pop) result.binding_type = binding->type;
            log::info(
                "est.enrolled",
                {{"operation", op}, {"attempts", attempt}, {"chain", result.issued.chain.size()}});
            return result;
        }
        if (r.status != 202) {
            RequestContext ctx;
            ctx.operation = op;
            ctx.key = key_text(key);
            ctx.digest = request.digest;
            ctx.subject = subject_text(request);
            ctx.pop = pop ? binding->type : std::string();
            ctx.client_certificate = credentials.tls != nullptr;
            ctx.credentials_configured = credentials.basic != nullptr;
            ctx.auth_setting = credentials.auth_setting;
            auto e = status_error(ctx, r);
            if (r.status == 400) {
                // A CA with a strict profile rejects a CSR that lacks what its csrattrs ask
                // for: say which of those we could not honour.
                std::string notes;
                for (const auto& u : extras.unmet) notes += "; " + u;
                for (const auto& u : result.attributes.unhandled)
                    notes += "; the EST server asked for " + u + ", which the agent cannot supply";
                if (auto why = key_mismatch(result.attributes, key); !why.empty())
                    notes += "; " + why;
                if (!notes.empty()) throw Error(e.kind(), e.what() + notes, e.status());
            }
            throw e;
        }

        // 4. 202 Accepted: wait as the server says, within our cap and attempt budget.
        if (attempt >= settings_.max_attempts)
            throw Error(Error::Kind::pending,
                        "EST " + op + " still pending (202) after " + std::to_string(attempt) +
                            " attempts; the request awaits approval at the CA, retrying later",
                        202);
        auto wait = settings_.retry_after_cap;
        if (auto ra = r.header("Retry-After")) {
            if (auto parsed = parse_retry_after(*ra))
                wait = std::min(*parsed, settings_.retry_after_cap);
            else
                log::warn("est.retry_after_unparsable", {{"value", std::string(*ra)}});
        } else {
            log::warn("est.retry_after_missing", {{"operation", op}});
        }
        wait = std::max(wait, std::chrono::seconds(1));
        log::info("est.pending",
                  {{"operation", op}, {"attempt", attempt}, {"wait_s", wait.count()}});
        if (!wait_for(wait, stop))
            throw Error(Error::Kind::interrupted,
                        "EST " + op + " interrupted while waiting after 202");
    }
}

}  // namespace mtls::est
