// Broken EST servers against the real agent: a server with a certificate from another CA,
// 401, 500, and 200 answers that carry garbage, truncated PKCS#7, a certificate for another
// key, an expired or a not-yet-valid certificate, or far too many bytes. Each time
// `mtls-agentctl renew --wait` fails with a clear message, status says degraded with the
// reason, the current identity (certificate, key, identity.json) is kept, the key made for
// the failed renewal is gone from the token, and the proxy keeps working with the current
// certificate. Once the server is fixed, the next renewal succeeds.
#include "tests/support/agent_world.hpp"
#include "tests/support/test_pki.hpp"

#include <gtest/gtest.h>

#include <iostream>

namespace {

using namespace mtls::test;
using namespace std::chrono_literals;
using nlohmann::json;

struct BadServer {
    const char* name;
    const char* mode;      // POST /sandbox/mode query; "" = wrong trust anchor (see below)
    const char* expected;  // in the ctl error and in status
};
void PrintTo(const BadServer& b, std::ostream* os) {
    *os << b.name;
}

class EstBadServer : public ::testing::TestWithParam<BadServer> {
  protected:
    static AgentSetup setup() {
        AgentSetup s;
        // No automatic retry during the test: the renewals are the ones `renew` asks for.
        s.renewal = "backoff_initial = \"5m\"\nbackoff_max = \"10m\"\n";
        return s;
    }
    AgentWorld w_{"est-bad", {}, setup()};
};

TEST_P(EstBadServer, ClearErrorAndTheCurrentIdentityIsKept) {
    const auto& p = GetParam();
    w_.agent->start();
    const auto before = w_.agent->wait_healthy(60s);
    const auto key = before["identity"]["key_id"].get<std::string>();
    const auto serial = before["identity"]["serial"].get<std::string>();
    const auto good_config = w_.agent->config_text();

    if (*p.mode) {
        w_.sandbox->set_mode(p.mode);
    } else {
        // The EST server's certificate does not chain to the configured trust anchor.
        auto foreign = make_test_ca("not the EST server's CA");
        const auto pem = w_.dir.write("foreign-ca.pem", to_pem(foreign.cert.get()));
        auto cfg = good_config;
        const auto at = cfg.find("trust_anchor = ");
        ASSERT_NE(at, std::string::npos) << cfg;
        const auto eol = cfg.find('\n', at);
        cfg.replace(at, eol - at, "trust_anchor = " + json(pem.string()).dump());
        w_.agent->write_config(cfg);
        auto r = w_.agent->ctl({"reload"});
        ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    }

    auto r = w_.agent->ctl({"renew", "--wait"});
    std::cout << "[ agent    ] " << p.name << ": " << r.err;  // what an operator reads
    EXPECT_NE(r.exit_code, 0) << r.out;
    EXPECT_NE((r.out + r.err).find(p.expected), std::string::npos)
        << "want \"" << p.expected << "\" in the ctl output:\n"
        << r.out << r.err;

    auto st = w_.agent->status().value();
    EXPECT_EQ(st["state"], "degraded") << st;
    EXPECT_NE(st["reasons"].dump().find(p.expected), std::string::npos) << st["reasons"];
    EXPECT_NE(st["renewal"]["last_result"].get<std::string>().find(p.expected), std::string::npos)
        << st["renewal"];
    EXPECT_EQ(st["renewal"]["consecutive_failures"], 1);
    // The current identity is kept, everywhere.
    EXPECT_EQ(st["identity"]["key_id"], key);
    EXPECT_EQ(st["identity"]["serial"], serial);
    EXPECT_EQ(w_.token_keys(), std::vector<std::string>{key}) << "the failed renewal's new key";
    auto state = w_.state();
    ASSERT_TRUE(state.current_key);
    EXPECT_EQ(state.current_key->id_hex, key);
    EXPECT_TRUE(state.retiring.empty());
    EXPECT_EQ(leaf_serial(state.chain_pem), norm_serial(serial));
    // The proxy keeps working with the current certificate.
    auto answer = w_.call();
    ASSERT_TRUE(answer.is_object()) << w_.agent->log();
    EXPECT_EQ(bound_answer(200, answer.dump()), "") << answer;
    EXPECT_EQ(
        norm_serial(answer.value(json::json_pointer("/client_certificate/serial"), std::string())),
        norm_serial(serial));

    // The server is fixed: the next renewal works and the agent is healthy again.
    if (*p.mode) {
        w_.sandbox->set_mode("est=normal&est_variant=normal");
    } else {
        w_.agent->write_config(good_config);
        ASSERT_EQ(w_.agent->ctl({"reload"}).exit_code, 0);
    }
    auto ok = w_.agent->ctl({"renew", "--wait"});
    EXPECT_EQ(ok.exit_code, 0) << ok.out << ok.err;
    auto after = w_.agent->status().value();
    EXPECT_EQ(after["state"], "healthy") << after;
    EXPECT_NE(after["identity"]["serial"], serial);
    expect_consistent(w_);
}

INSTANTIATE_TEST_SUITE_P(
    Faults, EstBadServer,
    ::testing::Values(BadServer{"WrongTlsCa", "", "server certificate rejected"},
                      BadServer{"Unauthorized401", "est=401", "401"},
                      BadServer{"ServerError500", "est=500", "500"},
                      BadServer{"GarbagePkcs7", "est_variant=garbage", "PKCS#7"},
                      BadServer{"TruncatedPkcs7", "est_variant=truncated", "PKCS#7"},
                      BadServer{"CertificateForAnotherKey", "est_variant=other-key",
                                "certificate for another key"},
                      BadServer{"ExpiredCertificate", "est_variant=expired", "already expired"},
                      BadServer{"NotYetValidCertificate", "est_variant=not-yet-valid",
                                "not yet valid"},
                      BadServer{"HugeResponse", "est_variant=huge", "response larger than"}),
    [](const ::testing::TestParamInfo<BadServer>& p) { return std::string(p.param.name); });

}  // namespace
