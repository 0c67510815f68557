// partner-sandbox: the other side of the wire on loopback — a partner's development PKI
// (root + issuing CA), its EST server, its OAuth 2.0 authorization server and its mTLS API
// (plus echo endpoints), for the integration tests and the README's first command.
//
//   partner-sandbox --ca-dir /tmp/sbx/ca --info-file /tmp/sbx/info.json
//                   --est-credentials /tmp/sbx/est-basic
//
// Prints where each service listens and which CA files to trust, and writes the same as
// JSON to --info-file (atomically, once every listener is up). SIGTERM/SIGINT: exit 0.
#include "common/atomic_file.hpp"
#include "common/log.hpp"
#include "revocation/cert_info.hpp"
#include "tests/sandbox/admin.hpp"
#include "tests/sandbox/ca.hpp"
#include "tests/sandbox/crl_server.hpp"
#include "tests/sandbox/est_server.hpp"
#include "tests/sandbox/https_server.hpp"
#include "tests/sandbox/jwt.hpp"
#include "tests/sandbox/modes.hpp"
#include "tests/sandbox/oauth_server.hpp"
#include "tests/sandbox/options.hpp"
#include "tests/sandbox/partner_api.hpp"
#include "tests/sandbox/pem.hpp"
#include "tests/sandbox/revocation_admin.hpp"
#include "tests/sandbox/revocations.hpp"
#include "tests/sandbox/stapler.hpp"
#include "tests/sandbox/stats.hpp"
#include "tests/sandbox/tls_context.hpp"
#include "tests/sandbox/tokens.hpp"

#include <unistd.h>
#include <CLI/CLI.hpp>

#include <boost/asio/signal_set.hpp>

#include <filesystem>
#include <iostream>
#include <optional>
#include <thread>

using namespace mtls;
using namespace mtls::sandbox;

namespace {

std::string url_host(const std::string& host) {
    return host.find(':') != std::string::npos ? "[" + host + "]" : host;
}

int run(Options& o) {
    auto addr = asio::ip::make_address(o.bind);
    if (!addr.is_loopback())
        throw std::runtime_error("--bind " + o.bind +
                                 " is not a loopback address (use 127.0.0.1 "
                                 "or ::1)");
    if (o.host.empty()) o.host = o.bind;

    asio::io_context io;
    // Revocation: the CRL listener first (its URL goes into the certificates), then the
    // index every issued certificate is recorded in, and the OCSP responder's certificate.
    std::unique_ptr<CrlServer> crl_srv;
    RevocationUrls rev_urls;
    if (o.revocation) {
        crl_srv = std::make_unique<CrlServer>(io);
        crl_srv->listen(addr, o.crl_port);
        const auto crl_base = "http://" + url_host(o.host) + ":" + std::to_string(crl_srv->port());
        rev_urls = {o.ocsp_url, crl_base + "/crl/issuing.crl", crl_base + "/crl/root.crl"};
    }
    auto ca = DevCa::open(o.ca_dir, rev_urls);
    std::unique_ptr<Revocations> revocations;
    ossl::PKey ocsp_signer_key;
    ossl::X509Ptr ocsp_signer;
    if (o.revocation) {
        revocations = std::make_unique<Revocations>(ca, o.crl_validity);
        crl_srv->set_revocations(revocations.get());
        ca.on_issue = [r = revocations.get()](X509* c) { r->record(c); };
        ca.make_ocsp_signer(ocsp_signer_key, ocsp_signer);
        revocations->record(ocsp_signer.get());
    }
    ossl::PKey server_key;
    std::vector<ossl::X509Ptr> server_chain;
    ca.make_server_identity(server_key, server_chain);
    std::vector<X509*> chain;
    for (auto& c : server_chain) chain.push_back(c.get());
    // --est-tls-ca separate: the EST listener's own PKI, unrelated to the one it enrolls for.
    std::optional<DevCa> est_pki;
    ossl::PKey est_key;
    std::vector<ossl::X509Ptr> est_chain_owned;
    std::vector<X509*> est_chain = chain;
    if (o.est_separate_tls_ca) {
        est_pki = DevCa::open(std::filesystem::path(o.ca_dir) / "est-tls", {},
                              "sandbox public TLS");
        est_pki->make_server_identity(est_key, est_chain_owned);
        est_chain.clear();
        for (auto& c : est_chain_owned) est_chain.push_back(c.get());
    }

    Stats stats;
    Modes modes(o);
    for (const auto& kv : o.est_modes) {
        const auto eq = kv.find('=');
        if (auto err = eq == std::string::npos ? "expected key=value, got \"" + kv + "\""
                                               : modes.apply(kv.substr(0, eq), kv.substr(eq + 1));
            !err.empty())
            throw std::runtime_error("--est-mode: " + err);
    }
    JwtSigner signer;
    TokenService tokens(o, signer);
    auto clients = o.clients_file.empty() ? ClientRegistry::open_registration()
                                          : ClientRegistry::from_file(o.clients_file);
    EstServer est(ca, o, modes, stats);
    OAuthServer oauth(ca, std::move(clients), tokens, signer, modes, stats);
    PartnerApi api(o, tokens, stats);
    Admin admin(modes, stats);

    // TLS contexts, one per service.
    std::vector<ossl::X509Ptr> bootstrap_cas;
    for (auto& f : o.est_bootstrap_ca)
        for (auto& c : certs_from_file(f)) bootstrap_cas.push_back(std::move(c));
    ServerTlsConfig est_tls{est_pki ? est_key.get() : server_key.get(),
                            est_chain,
                            ClientCerts::accept_any,
                            nullptr,
                            {ca.issuing(), ca.root()},
                            "sandbox-est"};
    for (auto& c : bootstrap_cas) est_tls.client_ca_names.push_back(c.get());
    est_tls.tls12_only = o.est_tls_max == "1.2";
    ServerTlsConfig as_tls{server_key.get(), chain, ClientCerts::accept_any,
                           nullptr,          {},    "sandbox-as"};
    auto api_store = ca.root_store();
    std::vector<ossl::X509Ptr> api_extra;
    for (auto& f : o.api_extra_ca)
        for (auto& c : certs_from_file(f)) api_extra.push_back(std::move(c));
    // The partner API names and trusts only the root (a client must send its intermediates).
    ServerTlsConfig api_tls{server_key.get(), chain,       ClientCerts::verify,
                            api_store.get(),  {ca.root()}, "sandbox-api"};
    for (auto& c : api_extra) {
        X509_STORE_add_cert(api_store.get(), c.get());
        api_tls.client_ca_names.push_back(c.get());
    }
    api_tls.single_use_tickets = o.api_single_use_tickets;
    api_tls.no_tickets = o.api_no_tickets;
    auto api_ctx = make_server_ctx(api_tls);
    std::unique_ptr<Stapler> stapler;
    const auto staple_url = o.staple_url.empty() ? o.ocsp_url : o.staple_url;
    if (o.revocation && !staple_url.empty()) {
        stapler = std::make_unique<Stapler>(server_chain[0].get(), ca.issuing(), staple_url,
                                            o.staple_period, o.api_staple);
        stapler->install(api_ctx.get());
    }
    auto admin_h = [&](Exchange& ex) { return admin.handle(ex); };
    HttpsServer est_srv(
        io, "est", make_server_ctx(est_tls), [&](Exchange& ex) { return est.handle(ex); }, admin_h,
        stats, o.idle_timeout);
    HttpsServer as_srv(
        io, "as", make_server_ctx(as_tls), [&](Exchange& ex) { return oauth.handle(ex); }, admin_h,
        stats, o.idle_timeout);
    HttpsServer api_srv(
        io, "api", std::move(api_ctx), [&](Exchange& ex) { return api.handle(ex); }, admin_h,
        stats, o.idle_timeout);
    est_srv.listen(addr, o.est_port);
    as_srv.listen(addr, o.as_port);
    api_srv.listen(addr, o.api_port);
    modes.on_as_availability = [&](bool up) { up ? as_srv.resume() : as_srv.pause(); };
    if (modes.as().kind == "down") as_srv.pause();

    auto base = [&](std::uint16_t port) {
        return "https://" + url_host(o.host) + ":" + std::to_string(port);
    };
    oauth.set_base_url(base(as_srv.port()));
    auto est_url = base(est_srv.port()) + "/.well-known/est";
    nlohmann::json info = {
        {"pid", ::getpid()},
        {"bind", o.bind},
        {"host", o.host},
        {"ca",
         {{"dir", o.ca_dir},
          {"root", ca.files().root.string()},
          {"issuing", ca.files().issuing.string()},
          {"bundle", ca.files().bundle.string()},
          {"created", ca.created()}}},
        {"server_cert", ca.files().server_cert.string()},
        {"est",
         {{"port", est_srv.port()},
          {"url", est_url},
          {"cacerts", est_url + "/cacerts"},
          {"csrattrs", est_url + "/csrattrs"},
          {"simpleenroll", est_url + "/simpleenroll"},
          {"simplereenroll", est_url + "/simplereenroll"},
          // What the EST listener's TLS certificate chains to, and the certificate itself.
          {"tls_root", (est_pki ? est_pki->files().root : ca.files().root).string()},
          {"tls_cert",
           (est_pki ? est_pki->files().server_cert : ca.files().server_cert).string()}}},
        {"as",
         {{"port", as_srv.port()},
          {"issuer", base(as_srv.port())},
          {"metadata", base(as_srv.port()) + "/.well-known/oauth-authorization-server"},
          {"token_endpoint", base(as_srv.port()) + "/token"},
          {"mtls_token_endpoint", base(as_srv.port()) + "/mtls/token"},
          {"introspection_endpoint", base(as_srv.port()) + "/introspect"},
          {"jwks_uri", base(as_srv.port()) + "/jwks"},
          {"token_format", o.token_format == TokenFormat::jwt ? "jwt" : "opaque"}}},
        {"api",
         {{"port", api_srv.port()},
          {"url", base(api_srv.port())},
          {"data", base(api_srv.port()) + "/api/secure/data"},
          {"echo", base(api_srv.port()) + "/echo"}}},
        {"admin",
         {{"stats", base(api_srv.port()) + "/sandbox/stats"},
          {"mode", base(api_srv.port()) + "/sandbox/mode"},
          {"requests", base(api_srv.port()) + "/sandbox/requests"}}},
    };
    std::unique_ptr<RevocationAdmin> rev_admin;
    if (o.revocation) {
        const auto dir = ca.files().root.parent_path();
        info["revocation"] = {
            {"ocsp_url", rev_urls.ocsp},
            {"crl_port", crl_srv->port()},
            {"issuing_crl_url", rev_urls.issuing_crl},
            {"root_crl_url", rev_urls.root_crl},
            {"index", revocations->index_file().string()},
            {"root_index", revocations->root_index_file().string()},
            {"issuing_crl_file", revocations->crl_file(false).string()},
            {"root_crl_file", revocations->crl_file(true).string()},
            {"ocsp_signer", (dir / "ocsp-signer.pem").string()},
            {"ocsp_signer_key", (dir / "ocsp-signer.key").string()},
            {"partner_leaf_serial", revocation::serial_of(server_chain[0].get())},
            {"intermediate_serial", revocation::serial_of(ca.issuing())},
            {"admin", base(api_srv.port()) + "/sandbox/revocation"},
            {"revoke", base(api_srv.port()) + "/sandbox/revoke"}};
        rev_admin.reset(new RevocationAdmin{*revocations, *crl_srv, stapler.get(),
                                            revocation::serial_of(server_chain[0].get()),
                                            revocation::serial_of(ca.issuing()),
                                            info["revocation"]});
        admin.set_revocation(rev_admin.get());
    }
    admin.set_info(info);

    asio::signal_set signals(io, SIGTERM, SIGINT);
    signals.async_wait([&](const boost::system::error_code& ec, int sig) {
        if (ec) return;
        log::info("sandbox_stopping", {{"signal", sig}});
        est_srv.stop();
        as_srv.stop();
        api_srv.stop();
        if (crl_srv) crl_srv->stop();
        io.stop();
    });

    if (!o.info_file.empty()) files::write_atomic(o.info_file, info.dump(2) + "\n", 0644);
    std::cout << "partner-sandbox ready (pid " << ::getpid() << ")\n"
              << "  trust (CA bundle): " << ca.files().bundle.string() << "\n"
              << "  root CA:           " << ca.files().root.string() << "\n"
              << "  EST:               " << est_url << "\n"
              << "  OAuth AS issuer:   " << base(as_srv.port()) << "\n"
              << "  token endpoint:    " << base(as_srv.port()) << "/mtls/token\n"
              << "  partner API:       " << base(api_srv.port()) << "/api/secure/data\n"
              << "  echo:              " << base(api_srv.port()) << "/echo/headers\n"
              << "  stats:             " << base(api_srv.port()) << "/sandbox/stats\n";
    if (!o.info_file.empty()) std::cout << "  info file:         " << o.info_file << "\n";
    std::cout << std::flush;

    std::vector<std::thread> workers;
    for (unsigned i = 1; i < o.threads; ++i) workers.emplace_back([&] { io.run(); });
    io.run();
    for (auto& t : workers) t.join();
    log::info("sandbox_stopped");
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    CLI::App app{"partner-sandbox: dev CA, EST server, OAuth AS and mTLS partner API on loopback"};
    std::string log_level = "info", pop = "off", token_format = "jwt";
    long validity = o.cert_validity.count(), lifetime = o.token_lifetime.count();
    long idle_ms = o.idle_timeout.count();
    app.add_option("--ca-dir", o.ca_dir, "directory of the dev CA (created or reused)")->required();
    app.add_option("--info-file", o.info_file, "write listen ports and CA files here as JSON");
    app.add_option("--bind", o.bind, "loopback address to bind: 127.0.0.1 or ::1");
    app.add_option("--host", o.host, "host name used in advertised URLs (default: --bind)");
    app.add_option("--est-port", o.est_port, "EST port (0: pick a free one)");
    app.add_option("--as-port", o.as_port, "OAuth AS port (0: pick a free one)");
    app.add_option("--api-port", o.api_port, "partner API port (0: pick a free one)");
    app.add_option("--threads", o.threads, "I/O threads")->check(CLI::Range(1u, 64u));
    app.add_option("--idle-timeout-ms", idle_ms, "close idle keep-alive connections after this");
    app.add_option("--log-level", log_level, "debug|info|warning|error");
    app.add_option("--est-credentials", o.est_credentials_file,
                   "file with user:password lines for HTTP Basic or Digest (simpleenroll; simplereenroll with reenroll_auth)")
        ->check(CLI::ExistingFile);
    app.add_option("--est-bootstrap-ca", o.est_bootstrap_ca,
                   "PEM CA file whose certificates may authenticate simpleenroll (repeatable)")
        ->check(CLI::ExistingFile);
    app.add_option("--est-label", o.est_labels,
                   "accepted CA label in /.well-known/est/<label>/ (repeatable; default any)");
    app.add_option("--cert-validity", validity, "seconds of validity of EST-issued certificates");
    app.add_option("--est-csrattrs", o.est_csrattrs,
                   "csrattrs: default | none | list of OID, OID=OID[+OID] and OID=N items, "
                   "comma-separated");
    app.add_flag("--est-csrattrs-nul", o.est_csrattrs_nul,
                 "end the csrattrs body with a NUL byte, as servers sending a C string do");
    app.add_flag("--est-enforce-csrattrs", o.est_enforce_csrattrs,
                 "reject (400) a CSR lacking what csrattrs asks for (key, digest, attributes)");
    app.add_option("--est-pop", pop, "proof-of-possession: off|tls-unique|tls-exporter|any");
    app.add_option("--est-retry-count", o.est_retry_count,
                   "answer this many (re)enrolls with 202 + Retry-After first");
    app.add_option("--est-retry-after", o.est_retry_after, "Retry-After seconds for 202");
    app.add_option("--est-fail", o.est_fail_status, "reject every EST request: 401|403|500")
        ->check(CLI::IsMember({0, 401, 403, 500}));
    app.add_option("--est-mode", o.est_modes,
                   "a /sandbox/mode setting at start, key=value (repeatable), e.g. "
                   "reenroll_auth=digest, est_base64=lenient, est_response_base64=oneline");
    app.add_option("--est-tls-max", o.est_tls_max,
                   "1.2: the EST listener speaks TLS 1.2 only, session-ID resumption, no tickets")
        ->check(CLI::IsMember({"", "1.2", "1.3"}));
    app.add_option_function<std::string>(
           "--est-tls-ca",
           [&o](const std::string& v) { o.est_separate_tls_ca = v == "separate"; },
           "separate: the EST listener's TLS certificate comes from another CA (its own root "
           "and issuing CA, in <ca-dir>/est-tls) than the certificates it enrolls for, as "
           "testrfc7030.com's comes from a public CA; shared (default): the partner's CA")
        ->check(CLI::IsMember({"shared", "separate"}));
    app.add_option("--clients", o.clients_file, "OAuth client registrations (JSON)")
        ->check(CLI::ExistingFile);
    app.add_option("--token-format", token_format, "jwt|opaque");
    app.add_option("--token-lifetime", lifetime, "access token lifetime in seconds");
    app.add_option("--as-mode", o.as_mode,
                   "initial AS mode: normal|down|slow|400|401|500|hostile-json|error");
    app.add_option("--api-trust-ca", o.api_extra_ca,
                   "extra PEM CA file trusted for API client certificates (repeatable)")
        ->check(CLI::ExistingFile);
    app.add_option("--api-allow-cn", o.api_allow_cn,
                   "allow only these client certificate CNs on /api/secure (repeatable)");
    app.add_flag("--api-token-optional", o.api_token_optional,
                 "/api/secure/* answers without a bearer token");
    app.add_flag("--api-single-use-tickets", o.api_single_use_tickets,
                 "API TLS 1.3 session tickets resume at most once (a client that offers one "
                 "twice gets a full handshake)");
    app.add_flag("--api-no-tickets", o.api_no_tickets,
                 "API without session resumption: no tickets, no session cache (every "
                 "handshake full)");
    app.add_option("--api-audience", o.api_audience,
                   "require tokens whose aud contains this value");
    long crl_validity = o.crl_validity.count(), staple_ms = o.staple_period.count();
    app.add_flag("--revocation", o.revocation,
                 "CA revocation: CRL DP over HTTP, index.txt for `openssl ocsp`, /sandbox/revoke");
    app.add_option("--crl-port", o.crl_port, "CRL distribution point port (0: pick a free one)");
    app.add_option("--ocsp-url", o.ocsp_url,
                   "OCSP responder URL put in the AIA of issued certificates");
    app.add_option("--crl-validity", crl_validity, "seconds from a CRL's thisUpdate to nextUpdate");
    app.add_flag("--api-staple", o.api_staple, "staple OCSP responses on the partner API");
    app.add_option("--staple-url", o.staple_url,
                   "OCSP URL the stapler fetches from (default: --ocsp-url)");
    app.add_option("--staple-period-ms", staple_ms, "fetch a fresh staple this often");
    CLI11_PARSE(app, argc, argv);

    log::Level level;
    if (!log::parse_level(log_level, level)) {
        std::cerr << "partner-sandbox: --log-level must be debug, info, warning or error\n";
        return 2;
    }
    log::configure(level, log::Format::text);
    if (!parse_pop(pop, o.est_pop)) {
        std::cerr << "partner-sandbox: --est-pop must be off, tls-unique, tls-exporter or any\n";
        return 2;
    }
    if (token_format != "jwt" && token_format != "opaque") {
        std::cerr << "partner-sandbox: --token-format must be jwt or opaque\n";
        return 2;
    }
    o.token_format = token_format == "jwt" ? TokenFormat::jwt : TokenFormat::opaque;
    if (validity <= 0 || lifetime <= 0 || idle_ms <= 0) {
        std::cerr << "partner-sandbox: --cert-validity, --token-lifetime and --idle-timeout-ms "
                     "must be positive\n";
        return 2;
    }
    o.cert_validity = std::chrono::seconds(validity);
    o.token_lifetime = std::chrono::seconds(lifetime);
    o.idle_timeout = std::chrono::milliseconds(idle_ms);
    if (crl_validity <= 0 || staple_ms <= 0) {
        std::cerr << "partner-sandbox: --crl-validity and --staple-period-ms must be positive\n";
        return 2;
    }
    o.crl_validity = std::chrono::seconds(crl_validity);
    o.staple_period = std::chrono::milliseconds(staple_ms);
    {
        Modes probe(o);
        if (auto err = probe.apply("as", o.as_mode); !err.empty()) {
            std::cerr << "partner-sandbox: --as-mode: " << err << "\n";
            return 2;
        }
    }
    try {
        return run(o);
    } catch (const std::exception& e) {
        std::cerr << "partner-sandbox: " << e.what() << "\n";
        return 1;
    }
}
