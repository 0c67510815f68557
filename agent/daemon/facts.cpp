#include "agent/daemon/facts.hpp"

#include "agent/metrics/prometheus.hpp"
#include "common/encoding.hpp"
#include "common/ossl_error.hpp"
#include "common/x509_text.hpp"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <algorithm>

namespace mtls::daemon {
namespace {

std::string name_entry(X509_NAME* name, int nid) {
    int idx = X509_NAME_get_index_by_NID(name, nid, -1);
    if (idx < 0) return {};
    ASN1_STRING* s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx));
    unsigned char* utf8 = nullptr;
    int n = ASN1_STRING_to_UTF8(&utf8, s);
    if (n < 0) return {};
    std::string out(reinterpret_cast<char*>(utf8), static_cast<std::size_t>(n));
    OPENSSL_free(utf8);
    return out;
}

// RFC 4514 (most specific first, "CN=host,OU=ops,O=Example"), UTF-8 kept as is; attributes
// the name does not have are absent (never "O=").
std::string one_line(const X509_NAME* name) {
    ossl::Bio bio(BIO_new(BIO_s_mem()));
    X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
    char* data = nullptr;
    long n = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<std::size_t>(n));
}

std::string asn1_text(const ASN1_STRING* s) {
    return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                       static_cast<std::size_t>(ASN1_STRING_length(s)));
}

std::vector<std::string> subject_alt_names(X509* cert) {
    std::vector<std::string> out;
    ossl::Owned<GENERAL_NAMES, &GENERAL_NAMES_free> names(static_cast<GENERAL_NAMES*>(
        X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
    if (!names) return out;
    for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
        const GENERAL_NAME* g = sk_GENERAL_NAME_value(names.get(), i);
        switch (g->type) {
            case GEN_DNS:
                out.push_back("DNS:" + asn1_text(g->d.dNSName));
                break;
            case GEN_URI:
                out.push_back("URI:" + asn1_text(g->d.uniformResourceIdentifier));
                break;
            case GEN_EMAIL:
                out.push_back("email:" + asn1_text(g->d.rfc822Name));
                break;
            case GEN_IPADD: {
                const auto ip = asn1_text(g->d.iPAddress);
                char buf[INET6_ADDRSTRLEN] = "";
                if (ip.size() == 4 || ip.size() == 16)
                    inet_ntop(ip.size() == 4 ? AF_INET : AF_INET6, ip.data(), buf, sizeof buf);
                out.push_back(std::string("IP:") + (buf[0] ? buf : "?"));
                break;
            }
            case GEN_DIRNAME:
                out.push_back("DirName:" + one_line(g->d.directoryName));
                break;
            default:
                out.push_back("othername");
                break;
        }
    }
    return out;
}

std::vector<std::string> extended_key_usage(X509* cert) {
    std::vector<std::string> out;
    ossl::Owned<EXTENDED_KEY_USAGE, &EXTENDED_KEY_USAGE_free> eku(static_cast<EXTENDED_KEY_USAGE*>(
        X509_get_ext_d2i(cert, NID_ext_key_usage, nullptr, nullptr)));
    if (!eku) return out;
    for (int i = 0; i < sk_ASN1_OBJECT_num(eku.get()); ++i) {
        const ASN1_OBJECT* o = sk_ASN1_OBJECT_value(eku.get(), i);
        const int nid = OBJ_obj2nid(o);
        if (nid != NID_undef) {
            out.emplace_back(OBJ_nid2sn(nid));
        } else {
            char buf[128];
            OBJ_obj2txt(buf, sizeof buf, o, 1);
            out.emplace_back(buf);
        }
    }
    return out;
}

// The token's URI with the key's CKA_ID (every byte percent-encoded, RFC 7512) and
// type=private: what pkcs11-tool, p11tool and OpenSSL's pkcs11 provider take to find the key.
std::string key_uri(const std::string& token_uri, const std::string& key_id_hex) {
    auto raw = encoding::hex_decode(key_id_hex);
    if (!raw || raw->empty() || token_uri.rfind("pkcs11:", 0) != 0) return {};
    static const char* digits = "0123456789ABCDEF";
    std::string out = token_uri;
    if (out.back() != ':') out += ';';
    out += "id=";
    for (unsigned char c : *raw) {
        out += '%';
        out += digits[c >> 4];
        out += digits[c & 15];
    }
    return out + ";type=private";
}

}  // namespace

IdentityFacts identity_facts(const identity::Identity& id, const std::string& key_type,
                             const std::string& token_uri) {
    IdentityFacts f;
    X509_NAME* subj = X509_get_subject_name(id.leaf());
    f.subject = one_line(subj);
    f.cn = name_entry(subj, NID_commonName);
    f.sans = subject_alt_names(id.leaf());
    f.eku = extended_key_usage(id.leaf());
    f.serial_hex = x509text::serial_hex(id.leaf());
    f.issuer = one_line(X509_get_issuer_name(id.leaf()));
    for (const auto& c : id.chain()) f.chain.push_back(one_line(X509_get_subject_name(c.get())));
    f.key_type = key_type;
    f.key_id = id.key_id();
    f.key_uri = key_uri(token_uri, f.key_id);
    f.token_uri = token_uri;
    f.thumbprint = id.x5t_s256();
    f.not_before = id.not_before();
    f.not_after = id.not_after();
    return f;
}

RenewalFacts renewal_facts(const renewal::Status& s) {
    RenewalFacts f{s.next_at, s.last_at, s.last_result, s.consecutive_failures, s.key_problem, {}};
    if (s.last_compromise)
        f.last_compromise = RenewalFacts::Compromise{
            s.last_compromise->at, s.last_compromise->trigger, s.last_compromise->reason};
    return f;
}

void token_device_facts(pkcs11::Token& token, bool& present, bool& logged_in) {
    CK_SLOT_INFO si{};
    present = token.fn()->C_GetSlotInfo(token.slot(), &si) == CKR_OK &&
              (si.flags & CKF_TOKEN_PRESENT) != 0;
    logged_in = false;
    if (!present) return;
    try {
        logged_in = token.with_session([&](CK_SESSION_HANDLE h) {
            CK_SESSION_INFO info{};
            if (token.fn()->C_GetSessionInfo(h, &info) != CKR_OK) return false;
            return info.state == CKS_RO_USER_FUNCTIONS || info.state == CKS_RW_USER_FUNCTIONS;
        });
    } catch (const std::exception&) {
        logged_in = false;
    }
}

std::vector<TokenProfileFacts> token_facts(const token::TokenCache* cache,
                                           const identity::IdentityPtr& current) {
    std::vector<TokenProfileFacts> out;
    if (!cache) return out;
    // One line per profile: the entry of the current certificate (others are on their way
    // out after a rotation); "not yet requested" when there is none yet.
    const std::string x5t = current ? current->x5t_s256() : std::string();
    for (const auto& e : cache->status()) {
        auto it = std::find_if(out.begin(), out.end(),
                               [&](const TokenProfileFacts& f) { return f.profile == e.profile; });
        if (it != out.end() && e.thumbprint != x5t) continue;
        TokenProfileFacts f;
        f.profile = e.profile;
        if (e.thumbprint.empty() || e.thumbprint == x5t) {  // else: an older certificate's
            f.valid_until = e.valid_until;
            if (e.last_error) f.last_error = e.last_error->code + ": " + e.last_error->message;
            if (e.state != "empty") f.state = e.state;
        }
        if (it != out.end())
            *it = std::move(f);
        else
            out.push_back(std::move(f));
    }
    return out;
}

std::vector<RouteFacts> route_facts(const proxy::ProxyStats& stats) {
    std::vector<RouteFacts> out;
    for (const auto& r : stats.routes()) {
        RouteFacts f;
        f.name = r.name;
        f.requests = r.requests.load();
        f.status_2xx = r.status_2xx.load();
        f.status_3xx = r.status_3xx.load();
        f.status_4xx = r.status_4xx.load();
        f.status_5xx = r.status_5xx.load();
        f.proxy_errors = r.proxy_errors.load();
        f.no_response = r.no_response.load();
        f.broken_responses = r.broken_responses.load();
        f.pool_size = r.pool_idle.load() + r.pool_busy.load();
        f.consecutive_failures = r.consecutive_failures.load();
        f.last_failure = std::string(proxy::to_string(r.last_failure.load()));
        f.last_failure_status = r.last_failure_status.load();
        if (const auto ms = r.last_failure_unix_ms.load(); ms > 0)
            f.last_failure_at = Clock::time_point(std::chrono::milliseconds(ms));
        out.push_back(std::move(f));
    }
    return out;
}

nlohmann::json proxy_facts(const proxy::ProxyStats& stats) {
    auto per_worker = nlohmann::json::array();
    const std::size_t n = std::min(stats.workers.load(), proxy::ProxyStats::kMaxWorkers);
    for (std::size_t i = 0; i < n; ++i)
        per_worker.push_back({{"worker", i},
                              {"open", stats.worker_open[i].load()},
                              {"accepted", stats.worker_accepted[i].load()}});
    return {{"workers", n},
            {"connections_open", stats.connections_open.load()},
            {"per_worker", std::move(per_worker)}};
}

std::string chain_pem(const identity::Identity& id) {
    std::vector<X509*> certs{id.leaf()};
    for (const auto& c : id.chain()) certs.push_back(c.get());
    return x509text::pem(certs);
}

std::string metrics_text(const proxy::ProxyStats& stats, const renewal::Status& renewal,
                         const identity::IdentityPtr& id, const token::TokenCache* cache,
                         const metrics::TokenOpMetrics& token_ops, int health_level) {
    metrics::Writer w;
    const auto routes = stats.routes();  // one snapshot: a reload may change the routes
    auto d = [](std::uint64_t v) { return static_cast<double>(v); };
    w.family("mtls_agent_build_info", "The agent's version (always 1).", "gauge");
    w.sample("mtls_agent_build_info", {{"version", MTLS_VERSION}}, 1);
    w.family("mtls_agent_health_state",
             "The health verdict of `mtls-agentctl status`: 0 healthy, 1 degraded, 2 failing.",
             "gauge");
    w.sample("mtls_agent_health_state", {}, health_level);
    w.family("mtls_agent_requests_total",
             "Proxied requests the partner answered, by route and status class of its answer.",
             "counter");
    for (const auto& r : routes) {
        w.sample("mtls_agent_requests_total", {{"route", r.name}, {"status", "2xx"}},
                 d(r.status_2xx));
        w.sample("mtls_agent_requests_total", {{"route", r.name}, {"status", "3xx"}},
                 d(r.status_3xx));
        w.sample("mtls_agent_requests_total", {{"route", r.name}, {"status", "4xx"}},
                 d(r.status_4xx));
        w.sample("mtls_agent_requests_total", {{"route", r.name}, {"status", "5xx"}},
                 d(r.status_5xx));
    }
    w.family("mtls_agent_proxy_errors_total",
             "Requests answered by the agent itself (no identity, token unavailable, upstream "
             "failures), not counted in mtls_agent_requests_total.",
             "counter");
    for (const auto& r : routes)
        w.sample("mtls_agent_proxy_errors_total", {{"route", r.name}}, d(r.proxy_errors));
    w.family("mtls_agent_requests_unanswered_total",
             "Requests whose app went away before any answer.", "counter");
    for (const auto& r : routes)
        w.sample("mtls_agent_requests_unanswered_total", {{"route", r.name}}, d(r.no_response));
    w.family("mtls_agent_broken_responses_total",
             "Partner responses cut off after their head was forwarded (also in "
             "mtls_agent_requests_total).",
             "counter");
    for (const auto& r : routes)
        w.sample("mtls_agent_broken_responses_total", {{"route", r.name}}, d(r.broken_responses));
    w.family("mtls_agent_route_consecutive_failures",
             "Failed requests in a row per route (upstream or token failures, 401 "
             "invalid_token); 3 or more make the agent degraded.",
             "gauge");
    for (const auto& r : routes)
        w.sample("mtls_agent_route_consecutive_failures", {{"route", r.name}},
                 r.consecutive_failures.load());
    w.family("mtls_agent_route_request_duration_seconds",
             "Time from a request's first byte to its end, per route.", "histogram");
    for (const auto& r : routes)
        r.duration.write(w, "mtls_agent_route_request_duration_seconds", {{"route", r.name}});
    w.family("mtls_agent_unrouted_requests_total",
             "Requests rejected before a route was known (400/404/405/431).", "counter");
    w.sample("mtls_agent_unrouted_requests_total", {}, d(stats.unrouted_requests));
    w.family("mtls_agent_upstream_handshakes_total", "Upstream TLS handshakes, full or resumed.",
             "counter");
    for (const auto& r : routes) {
        w.sample("mtls_agent_upstream_handshakes_total", {{"route", r.name}, {"kind", "full"}},
                 d(r.handshakes_full));
        w.sample("mtls_agent_upstream_handshakes_total", {{"route", r.name}, {"kind", "resumed"}},
                 d(r.handshakes_resumed));
    }
    w.family("mtls_agent_upstream_connections", "Upstream pool connections by state.", "gauge");
    for (const auto& r : routes) {
        w.sample("mtls_agent_upstream_connections", {{"route", r.name}, {"state", "idle"}},
                 d(r.pool_idle));
        w.sample("mtls_agent_upstream_connections", {{"route", r.name}, {"state", "busy"}},
                 d(r.pool_busy));
    }
    w.family("mtls_agent_client_connections", "Open local client connections.", "gauge");
    w.sample("mtls_agent_client_connections", {}, d(stats.connections_open));
    const std::size_t workers = std::min(stats.workers.load(), proxy::ProxyStats::kMaxWorkers);
    w.family("mtls_agent_proxy_workers", "The proxy's event-loop threads (listener.workers).",
             "gauge");
    w.sample("mtls_agent_proxy_workers", {}, d(workers));
    w.family("mtls_agent_worker_client_connections",
             "Open local client connections per proxy worker.", "gauge");
    for (std::size_t i = 0; i < workers; ++i)
        w.sample("mtls_agent_worker_client_connections", {{"worker", std::to_string(i)}},
                 d(stats.worker_open[i]));
    w.family("mtls_agent_worker_client_connections_accepted_total",
             "Local client connections handed to each proxy worker.", "counter");
    for (std::size_t i = 0; i < workers; ++i)
        w.sample("mtls_agent_worker_client_connections_accepted_total",
                 {{"worker", std::to_string(i)}}, d(stats.worker_accepted[i]));
    w.family("mtls_agent_client_connections_refused_total",
             "Local client connections refused at once (503 too_many_connections) by reason.",
             "counter");
    w.sample("mtls_agent_client_connections_refused_total", {{"reason", "max_connections"}},
             d(stats.refused_total));
    w.sample("mtls_agent_client_connections_refused_total",
             {{"reason", "max_connections_per_caller"}}, d(stats.refused_per_caller));
    w.sample("mtls_agent_client_connections_refused_total", {{"reason", "out_of_descriptors"}},
             d(stats.refused_no_fds));
    w.family("mtls_agent_renewal_attempts_total", "Enrollment and renewal attempts.", "counter");
    w.sample("mtls_agent_renewal_attempts_total", {}, d(renewal.attempts));
    w.family("mtls_agent_renewal_failures_total", "Failed enrollment and renewal attempts.",
             "counter");
    w.sample("mtls_agent_renewal_failures_total", {}, d(renewal.failures));
    w.family("mtls_agent_certificate_expiration_timestamp_seconds",
             "The client certificate's notAfter as Unix seconds (absent without a certificate).",
             "gauge");
    if (id)
        w.sample("mtls_agent_certificate_expiration_timestamp_seconds", {},
                 static_cast<double>(std::chrono::duration_cast<std::chrono::seconds>(
                                         id->not_after().time_since_epoch())
                                         .count()));
    w.family("mtls_agent_certificate_expiry_seconds",
             "Seconds until the client certificate expires (absent without a certificate).",
             "gauge");
    if (id) {
        auto left = std::chrono::duration_cast<std::chrono::seconds>(
            id->not_after() - std::chrono::system_clock::now());
        w.sample("mtls_agent_certificate_expiry_seconds", {}, static_cast<double>(left.count()));
    }
    if (cache) {
        w.family("mtls_agent_oauth_token_requests_total",
                 "OAuth access token requests sent to the authorization server.", "counter");
        w.sample("mtls_agent_oauth_token_requests_total", {}, d(cache->requests_started()));
        w.family("mtls_agent_oauth_token_request_failures_total",
                 "Failed OAuth access token requests by profile and reason (error code).",
                 "counter");
        for (const auto& [key, n] : cache->failure_counts())
            w.sample("mtls_agent_oauth_token_request_failures_total",
                     {{"profile", key.first}, {"reason", key.second}}, d(n));
        w.family("mtls_agent_oauth_token_consecutive_failures",
                 "Failed OAuth access token requests in a row per profile.", "gauge");
        for (const auto& e : cache->status())
            w.sample("mtls_agent_oauth_token_consecutive_failures", {{"profile", e.profile}},
                     e.failures);
    }
    w.family("mtls_agent_pkcs11_sign_seconds",
             "Latency of signatures on the PKCS#11 token (TLS handshakes, CSRs).", "histogram");
    token_ops.sign_seconds.write(w, "mtls_agent_pkcs11_sign_seconds", {});
    w.family("mtls_agent_pkcs11_sign_failures_total", "Failed signatures on the PKCS#11 token.",
             "counter");
    w.sample("mtls_agent_pkcs11_sign_failures_total", {}, d(token_ops.sign_failures));
    return w.text();
}

}  // namespace mtls::daemon
