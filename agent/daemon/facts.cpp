#include "agent/daemon/facts.hpp"

#include "agent/metrics/prometheus.hpp"
#include "common/ossl_error.hpp"

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>

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

std::string one_line(X509_NAME* name) {
    ossl::Bio bio(BIO_new(BIO_s_mem()));
    X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253);
    char* data = nullptr;
    long n = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<std::size_t>(n));
}

std::string serial_hex(X509* cert) {
    ossl::BigNum bn(ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr));
    if (!bn) return {};
    char* hex = BN_bn2hex(bn.get());
    std::string out(hex ? hex : "");
    OPENSSL_free(hex);
    return out;
}

}  // namespace

IdentityFacts identity_facts(const identity::Identity& id, const std::string& key_type,
                             const std::string& token_uri) {
    IdentityFacts f;
    X509_NAME* subj = X509_get_subject_name(id.leaf());
    f.cn = name_entry(subj, NID_commonName);
    f.o = name_entry(subj, NID_organizationName);
    f.ou = name_entry(subj, NID_organizationalUnitName);
    f.serial_hex = serial_hex(id.leaf());
    f.issuer = one_line(X509_get_issuer_name(id.leaf()));
    f.key_type = key_type;
    f.key_id = id.key_id();
    f.token_uri = token_uri;
    f.thumbprint = id.x5t_s256();
    f.not_before = id.not_before();
    f.not_after = id.not_after();
    return f;
}

RenewalFacts renewal_facts(const renewal::Status& s) {
    return RenewalFacts{s.next_at, s.last_at, s.last_result, s.consecutive_failures, s.key_problem};
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

std::vector<TokenProfileFacts> token_facts(const token::TokenCache* cache) {
    std::vector<TokenProfileFacts> out;
    if (!cache) return out;
    for (const auto& e : cache->status()) {
        out.push_back({e.profile, e.valid_until,
                       e.last_error ? e.last_error->code + ": " + e.last_error->message : ""});
    }
    return out;
}

std::vector<RouteFacts> route_facts(const proxy::ProxyStats& stats) {
    std::vector<RouteFacts> out;
    for (const auto& r : stats.routes())
        out.push_back({r.name, r.requests.load(), r.status_5xx.load() + r.proxy_errors.load(),
                       r.pool_idle.load() + r.pool_busy.load()});
    return out;
}

std::string chain_pem(const identity::Identity& id) {
    ossl::Bio bio(BIO_new(BIO_s_mem()));
    PEM_write_bio_X509(bio.get(), id.leaf());
    for (const auto& c : id.chain()) PEM_write_bio_X509(bio.get(), c.get());
    char* data = nullptr;
    long n = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<std::size_t>(n));
}

std::string metrics_text(const proxy::ProxyStats& stats, const renewal::Status& renewal,
                         const identity::IdentityPtr& id, const token::TokenCache* cache,
                         const metrics::TokenOpMetrics& token_ops) {
    metrics::Writer w;
    const auto routes = stats.routes();  // one snapshot: a reload may change the routes
    auto d = [](std::uint64_t v) { return static_cast<double>(v); };
    w.family("mtls_agent_requests_total", "Proxied requests by route and status class.", "counter");
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
             "failures).",
             "counter");
    for (const auto& r : routes)
        w.sample("mtls_agent_proxy_errors_total", {{"route", r.name}}, d(r.proxy_errors));
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
    w.family("mtls_agent_certificate_expiry_seconds",
             "Seconds until the client certificate expires (absent without a certificate).",
             "gauge");
    if (id) {
        auto left = std::chrono::duration_cast<std::chrono::seconds>(
            id->not_after() - std::chrono::system_clock::now());
        w.sample("mtls_agent_certificate_expiry_seconds", {}, static_cast<double>(left.count()));
    }
    if (cache) {
        w.family("mtls_agent_token_requests_total", "Access token requests sent to the AS.",
                 "counter");
        w.sample("mtls_agent_token_requests_total", {}, d(cache->requests_started()));
        w.family("mtls_agent_token_failures", "Consecutive failed token requests per profile.",
                 "gauge");
        for (const auto& e : cache->status())
            w.sample("mtls_agent_token_failures", {{"profile", e.profile}}, e.failures);
    }
    w.family("mtls_agent_token_sign_seconds",
             "Latency of signatures on the PKCS#11 token (TLS handshakes, CSRs).", "histogram");
    token_ops.sign_seconds.write(w, "mtls_agent_token_sign_seconds", {});
    w.family("mtls_agent_token_sign_failures_total", "Failed signatures on the PKCS#11 token.",
             "counter");
    w.sample("mtls_agent_token_sign_failures_total", {}, d(token_ops.sign_failures));
    return w.text();
}

}  // namespace mtls::daemon
