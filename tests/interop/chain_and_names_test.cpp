// Partners as they are: they trust only the root (so the agent must send its intermediates
// in every handshake), register full subject DNs for tls_client_auth, and answer a
// certificate they refuse with a TLS alert. Against the real agent, the sandbox (whose API,
// AS and EST server trust only the root) and an independent TLS server (openssl s_server).
#include "common/atomic_file.hpp"
#include "common/ossl.hpp"
#include "tests/support/agent_world.hpp"
#include "tests/support/poll.hpp"

#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <iostream>
#include <sstream>

namespace {

using namespace mtls::test;
using namespace std::chrono_literals;
using nlohmann::json;

std::vector<mtls::ossl::X509Ptr> certs_of(const std::string& pem) {
    std::vector<mtls::ossl::X509Ptr> out;
    mtls::ossl::Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    while (X509* c = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) out.emplace_back(c);
    ERR_clear_error();
    return out;
}

std::string name_of(const X509_NAME* n) {
    mtls::ossl::Bio bio(BIO_new(BIO_s_mem()));
    X509_NAME_print_ex(bio.get(), n, 0, XN_FLAG_RFC2253);
    char* data = nullptr;
    const long len = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<std::size_t>(len));
}

TEST(RootOnlyPartner, TheChainGoesWithEveryHandshake) {
    AgentWorld w{"root-only"};
    w.agent->start();
    auto st = w.agent->wait_healthy(60s);

    // `mtls-agentctl cert`: the leaf, then the issuing CA (not the root).
    auto cert = w.agent->ctl({"cert"});
    ASSERT_EQ(cert.exit_code, 0) << cert.err;
    auto chain = certs_of(cert.out);
    ASSERT_EQ(chain.size(), 2u) << cert.out;
    EXPECT_EQ(X509_check_issued(chain[1].get(), chain[0].get()), X509_V_OK);
    EXPECT_NE(X509_check_issued(chain[1].get(), chain[1].get()), X509_V_OK)
        << "the self-signed root must not be sent";
    // identity.json keeps the same chain.
    EXPECT_EQ(certs_of(w.state().chain_pem).size(), 2u);

    // The partner API (root-only trust) and the AS (root-only) accept the agent: a call with
    // a token bound to the certificate.
    auto answer = w.call();
    EXPECT_EQ(bound_answer(200, answer.dump()), "") << answer << w.agent->log();

    // Re-enrollment presents the chain to the EST server (root-only too), and the new
    // identity carries it again; rotate answers once the new token is fetched.
    const auto before = w.sandbox->stats()["token_requests"].get<int>();
    auto rot = w.agent->ctl({"rotate", "--wait", "--json"});
    ASSERT_EQ(rot.exit_code, 0) << rot.out << rot.err << w.agent->log();
    auto steps = json::parse(rot.out)["steps"];
    bool token_step = false;
    for (const auto& s : steps)
        if (s["step"] == "token" && s["status"] == "ok") token_step = true;
    EXPECT_TRUE(token_step) << steps;
    EXPECT_GT(w.sandbox->stats()["token_requests"].get<int>(), before)
        << "rotate --wait answered before the new token was requested";
    EXPECT_EQ(certs_of(w.agent->ctl({"cert"}).out).size(), 2u);
    EXPECT_EQ(bound_answer(200, w.call().dump()), "");

    // `cert --jwk`: what an AS needs to register the certificate (RFC 8705 §2.2).
    auto jwk_run = w.agent->ctl({"cert", "--jwk"});
    ASSERT_EQ(jwk_run.exit_code, 0) << jwk_run.err;
    auto jwk = json::parse(jwk_run.out);
    EXPECT_EQ(jwk["kty"], "EC");
    EXPECT_EQ(jwk["crv"], "P-256");
    EXPECT_EQ(jwk["x5c"].size(), 2u);
    auto now = w.agent->status().value();
    EXPECT_EQ(jwk["x5t#S256"], now["identity"]["thumbprint_sha256"]) << now["identity"];
    (void)st;
}

// Upgrading from a version that stored the leaf alone: the chain is completed from the
// stored /cacerts at start-up, so the first handshake already carries the intermediate.
TEST(RootOnlyPartner, ALeafOnlyStoredChainIsCompletedAtStart) {
    AgentWorld w{"leaf-only-state"};
    w.agent->start();
    w.agent->wait_healthy(60s);
    ASSERT_EQ(w.agent->stop(), 0);
    auto file = w.agent->state_file();
    auto state = json::parse(mtls::files::read_all(file, 1u << 20));
    auto pem = state["chain_pem"].get<std::string>();
    state["chain_pem"] = pem.substr(0, pem.find("-----END CERTIFICATE-----") + 26);
    mtls::files::write_atomic(file, state.dump(2), 0600);
    ASSERT_EQ(certs_of(w.state().chain_pem).size(), 1u);

    w.agent->start();
    w.agent->wait_healthy(60s);
    EXPECT_EQ(certs_of(w.agent->ctl({"cert"}).out).size(), 2u);
    EXPECT_EQ(bound_answer(200, w.call().dump()), "") << w.agent->log();
}

// The DN a partner registers for tls_client_auth, with every SAN kind; the AS (registered
// by that DN) grants less scope than asked, which the agent logs as a warning.
TEST(SubjectAndNames, FullDnAndEverySanKind) {
    constexpr const char* kDn =
        "serialNumber=HOST-17,CN=agent-under-test.example,OU=eu-west,OU=payments,"
        "O=Example Corp,L=San Francisco,ST=California,C=US";
    TempDir reg("full-dn-clients");
    json clients = {{"clients",
                     {{{"client_id", "test-agent"},
                       {"token_endpoint_auth_method", "tls_client_auth"},
                       {"tls_client_auth_subject_dn", kDn},
                       {"scope", "orders:read"},
                       {"scope_policy", "narrow"}}}}};
    const auto clients_file = reg.write("clients.json", clients.dump());
    AgentWorld w{"full-dn", {"--clients", clients_file.string()}};
    auto cfg = w.agent->config_text();
    const auto cid = cfg.find("client_id = \"test-agent\"\n");
    ASSERT_NE(cid, std::string::npos);
    cfg.insert(cid, "scope = \"orders:read orders:write\"\n");
    const auto at = cfg.find("common_name = ");
    ASSERT_NE(at, std::string::npos);
    const auto end = cfg.find("\n\n", at);
    cfg.replace(at, end - at,
                "common_name = \"agent-under-test.example\"\n"
                "organization = \"Example Corp\"\n"
                "organizational_unit = [\"payments\", \"eu-west\"]\n"
                "country = \"US\"\nstate = \"California\"\nlocality = \"San Francisco\"\n"
                "serial_number = \"HOST-17\"\n"
                "dns_names = [\"agent-under-test.example\"]\n"
                "ip_addresses = [\"127.0.0.1\", \"::1\"]\n"
                "uris = [\"spiffe://example.org/host-17\"]\n"
                "emails = [\"ops@example.org\"]");
    w.agent->write_config(cfg);
    w.agent->start();
    w.agent->wait_healthy(60s);

    auto chain = certs_of(w.agent->ctl({"cert"}).out);
    ASSERT_FALSE(chain.empty());
    EXPECT_EQ(name_of(X509_get_subject_name(chain[0].get())), kDn);
    auto* sans = static_cast<GENERAL_NAMES*>(
        X509_get_ext_d2i(chain[0].get(), NID_subject_alt_name, nullptr, nullptr));
    ASSERT_NE(sans, nullptr);
    std::vector<int> kinds;
    for (int i = 0; i < sk_GENERAL_NAME_num(sans); ++i)
        kinds.push_back(sk_GENERAL_NAME_value(sans, i)->type);
    GENERAL_NAMES_free(sans);
    EXPECT_EQ(kinds, (std::vector<int>{GEN_DNS, GEN_IPADD, GEN_IPADD, GEN_URI, GEN_EMAIL}));

    // The partner sees the same subject.
    auto answer = w.call();
    EXPECT_EQ(bound_answer(200, answer.dump()), "") << answer;
    EXPECT_EQ(
        answer.value(json::json_pointer("/client_certificate/organizational_unit"), std::string()),
        "payments")
        << answer["client_certificate"];
    EXPECT_EQ(answer.value(json::json_pointer("/token/scope"), std::string()), "orders:read")
        << answer["token"];
    const auto log = w.agent->log();
    const auto warn = log.find("oauth.scope_narrowed");
    ASSERT_NE(warn, std::string::npos) << log;
    EXPECT_NE(log.find("orders:write", warn), std::string::npos) << log.substr(warn, 300);
}

// A partner that refuses our certificate answers with a TLS alert after the TLS 1.3
// handshake; the app must read `upstream_tls` and the alert's name every time, not a broken
// pipe (the write of the request races the alert).
TEST(PartnerTlsAlert, UnknownCaIsNamedEveryTime) {
    TempDir other("alert-ca");
    // An independent server that trusts another CA: openssl s_server with the sandbox's
    // server certificate, verifying client certificates against a CA that never issued ours.
    AgentWorld w{"tls-alert"};
    const auto ca_dir = w.sandbox->info()["ca"]["dir"].get<std::string>();
    auto gen = run_shell(
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 "
        "-subj /CN=stranger-ca -keyout \"$D/k.pem\" -out \"$D/ca.pem\" 2>/dev/null",
        {{"D", other.path().string()}});
    ASSERT_EQ(gen.exit_code, 0) << gen.err;
    const auto port = free_loopback_port();
    ChildProcess server(
        {"openssl", "s_server", "-quiet", "-accept", "127.0.0.1:" + std::to_string(port), "-cert",
         ca_dir + "/server.pem", "-key", ca_dir + "/server.key", "-Verify", "1",
         "-verify_return_error", "-CAfile", (other.path() / "ca.pem").string(), "-www"},
        other.path() / "s_server.log");
    ASSERT_TRUE(poll_until(
        [&] {
            return run_command({"bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/" + std::to_string(port)})
                       .exit_code == 0;
        },
        10s))
        << server.log();

    auto cfg = w.agent->config_text();
    cfg +=
        "\n[[routes]]\nname = \"strict\"\npath_prefix = \"/strict/\"\nupstream = "
        "\"https://localhost:" +
        std::to_string(port) + "/\"\nca_file = " + json(w.sandbox->ca_bundle()).dump() + "\n";
    w.agent->write_config(cfg);
    w.agent->start();
    w.agent->wait_healthy(60s);

    const std::string url = "http://127.0.0.1:" + std::to_string(w.agent->port()) + "/strict/x";
    int named = 0;
    std::string last;
    const int tries = 100;
    // Half of the calls upload a body: its writes meet the partner's reset after the alert.
    const auto upload = other.write("body.bin", std::string(256 * 1024, 'x'));
    for (int i = 0; i < tries; ++i) {
        std::vector<std::string> argv{"curl", "-sS", "--max-time", "20", "-w", "\n%{http_code}"};
        if (i % 2 == 1)
            argv.insert(argv.end(), {"-H", "Content-Type: application/octet-stream",
                                     "--data-binary", "@" + upload.string()});
        argv.push_back(url);
        auto r = run_command(argv);
        auto body_end = r.out.rfind('\n');
        auto body = json::parse(r.out.substr(0, body_end), nullptr, false);
        last = r.out;
        if (r.out.substr(body_end + 1) == "502" && !body.is_discarded() &&
            body.value("error", "") == "upstream_tls" &&
            body.value("message", "").find("unknown_ca") != std::string::npos)
            ++named;
        else
            std::cout << "[ agent    ] not named (try " << i << "): " << r.exit_code << " " << r.out
                      << r.err << "\n";
    }
    std::cout << "[ agent    ] " << last << "\n";
    if (named != tries) {
        std::istringstream log(w.agent->log());
        for (std::string line; std::getline(log, line);)
            if (line.find("route=strict") != std::string::npos &&
                line.find("error=upstream_tls") == std::string::npos)
                std::cout << "[ agent    ] " << line << "\n";
    }
    EXPECT_EQ(named, tries) << "last answer: " << last;
}

}  // namespace
