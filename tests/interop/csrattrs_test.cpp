// CSR attributes (RFC 7030 §4.5, RFC 8951 §3) as real EST servers send them, against the real
// agent: a body with a C string's trailing NUL; a strict profile (EJBCA, libest with csrattrs
// enforcement) that asks for an EC P-384 key, SHA-384 as a bare hash OID (as libest sends it)
// and a macAddress attribute, and rejects a CSR without them. With [key] type = "from-server"
// and [est.csr_attributes] the agent satisfies it; without, it says what to set.
#include "tests/support/agent_world.hpp"

#include <gtest/gtest.h>

#include <iostream>
#include <sstream>
#include <string>
#include <vector>

namespace {

using namespace mtls::test;
using namespace std::chrono_literals;
using nlohmann::json;

// id-ecPublicKey{secp384r1}, id-sha384, macAddress; the sandbox rejects CSRs lacking them.
const std::vector<std::string> kStrictServer = {
    "--est-csrattrs", "id-ecPublicKey=secp384r1,sha384,macAddress", "--est-enforce-csrattrs"};
const char* const kMacConfig = "\n[est.csr_attributes]\nmacAddress = \"00:16:3e:12:34:56\"\n";

AgentSetup setup(const std::string& key_type, const std::string& extra) {
    AgentSetup s;
    s.key_type = key_type;
    s.extra = extra;
    // One attempt at a time: the ones the test asks for.
    s.renewal = "backoff_initial = \"5m\"\nbackoff_max = \"10m\"\n";
    return s;
}

json wait_failed(AgentWorld& w) {
    return w.agent->wait_status(
        [](const json& s) { return s["renewal"]["consecutive_failures"].get<int>() >= 1; }, 60s,
        "the first enrollment to fail");
}

// The digests of the CSRs the agent signed, from its est.csr log lines, in order.
std::vector<std::string> csr_digests(const std::string& log) {
    std::vector<std::string> out;
    std::istringstream in(log);
    std::string line;
    while (std::getline(in, line)) {
        if (line.find(" event=est.csr ") == std::string::npos) continue;
        const auto at = line.find(" digest=");
        if (at == std::string::npos) continue;
        const auto from = at + 8;
        out.push_back(line.substr(from, line.find(' ', from) - from));
    }
    return out;
}

TEST(InteropCsrAttrs, TrailingNulInTheBody) {
    AgentWorld w{"csrattrs-nul", {"--est-csrattrs-nul"}, setup("ec-p256", "")};
    w.agent->start();
    const auto first = w.agent->wait_healthy(60s);
    const auto serial = first["identity"]["serial"].get<std::string>();
    auto r = w.agent->ctl({"renew", "--wait"});
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    const auto log = w.agent->log();
    EXPECT_EQ(log.find("est.csrattrs_ignored"), std::string::npos) << log;
    EXPECT_NE(log.find("keys=EC prime256v1"), std::string::npos) << "csrattrs were read:\n" << log;
    auto after = expect_consistent(w);
    EXPECT_NE(after["identity"]["serial"], serial);
}

TEST(InteropCsrAttrs, FollowsAStrictServerThroughEnrollRenewRotate) {
    AgentWorld w{"csrattrs-strict", kStrictServer, setup("from-server", kMacConfig)};
    w.agent->start();
    auto st = w.agent->wait_healthy(60s);
    EXPECT_EQ(st["identity"]["key_type"], "ec-p384") << st;
    EXPECT_EQ(w.state().current_key->type, "ec-p384");
    // The sandbox rejects anything but SHA-384; the agent's log says so as well.
    EXPECT_EQ(csr_digests(w.agent->log()), std::vector<std::string>{"SHA384"}) << w.agent->log();
    expect_consistent(w);

    auto renewed = w.agent->ctl({"renew", "--wait"});
    ASSERT_EQ(renewed.exit_code, 0) << renewed.out << renewed.err << w.agent->log();
    const auto key1 = w.agent->status().value()["identity"]["key_id"].get<std::string>();
    auto rotated = w.agent->ctl({"rotate", "--wait"});
    ASSERT_EQ(rotated.exit_code, 0) << rotated.out << rotated.err << w.agent->log();
    st = expect_consistent(w);
    EXPECT_EQ(st["identity"]["key_type"], "ec-p384") << st;
    EXPECT_NE(st["identity"]["key_id"], key1);
    const auto stats = w.sandbox->stats();
    EXPECT_EQ(stats["est_rejected"], 0) << stats;
    EXPECT_EQ(stats["est_enrolls"], 1) << stats;
    EXPECT_EQ(stats["est_reenrolls"], 2) << stats;
    EXPECT_EQ(csr_digests(w.agent->log()), std::vector<std::string>(3, "SHA384")) << w.agent->log();

    // The CA's profile changes to P-256 with ecdsa-with-SHA256: the next rotation follows.
    w.sandbox->set_mode("est_csrattrs=id-ecPublicKey%3Dprime256v1,ecdsa-with-SHA256,macAddress");
    rotated = w.agent->ctl({"rotate", "--wait"});
    ASSERT_EQ(rotated.exit_code, 0) << rotated.out << rotated.err << w.agent->log();
    st = expect_consistent(w);
    EXPECT_EQ(st["identity"]["key_type"], "ec-p256") << st;
    EXPECT_EQ(csr_digests(w.agent->log()).back(), "SHA256") << w.agent->log();
}

TEST(InteropCsrAttrs, RenewalWithoutRekeyingRekeysWhenTheServerWantsAnotherKey) {
    auto s = setup("from-server", kMacConfig);
    s.key = "rekey_on_renew = false\n";
    // The sandbox's default: ecdsa-with-SHA256 and an EC P-256 key, enforced.
    AgentWorld w{"csrattrs-renew", {"--est-enforce-csrattrs"}, s};
    w.agent->start();
    auto st = w.agent->wait_healthy(60s);
    EXPECT_EQ(st["identity"]["key_type"], "ec-p256") << st;
    const auto key1 = st["identity"]["key_id"].get<std::string>();
    auto r = w.agent->ctl({"renew", "--wait"});
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err << w.agent->log();
    EXPECT_EQ(w.agent->status().value()["identity"]["key_id"], key1) << "renewed for the same key";

    w.sandbox->set_mode("est_csrattrs=id-ecPublicKey%3Dsecp384r1,sha384,macAddress");
    r = w.agent->ctl({"renew", "--wait"});
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err << w.agent->log();
    st = expect_consistent(w);
    EXPECT_EQ(st["identity"]["key_type"], "ec-p384") << st;
    EXPECT_NE(st["identity"]["key_id"], key1);
    EXPECT_NE(w.agent->log().find("renewal.rekey_for_csrattrs"), std::string::npos);
    EXPECT_EQ(w.sandbox->stats()["est_rejected"], 0);
}

TEST(InteropCsrAttrs, MissingAttributeNamesTheConfigKey) {
    AgentWorld w{"csrattrs-missing", kStrictServer, setup("from-server", "")};
    const auto config = w.agent->config_text();
    w.agent->start();
    auto st = wait_failed(w);
    const std::string expected =
        "the EST server asked for CSR attribute macAddress (1.3.6.1.1.1.1.22), which the config "
        "does not supply: set est.csr_attributes.macAddress";
    const auto last = st["renewal"]["last_result"].get<std::string>();
    std::cout << "[ agent    ] " << last << "\n";  // what an operator reads
    EXPECT_NE(last.find("400"), std::string::npos) << last;
    EXPECT_NE(last.find(expected), std::string::npos) << last;
    EXPECT_NE(st["reasons"].dump().find("est.csr_attributes.macAddress"), std::string::npos)
        << st["reasons"];
    EXPECT_EQ(st["state"], "failing") << st;
    EXPECT_TRUE(w.token_keys().empty()) << "the key made for the failed enrollment is gone";
    EXPECT_NE(w.agent->log().find("est.csrattr_not_supplied"), std::string::npos)
        << "warned before sending:\n"
        << w.agent->log();
    auto r = w.agent->ctl({"renew", "--wait"});
    EXPECT_NE(r.exit_code, 0) << r.out;
    EXPECT_NE((r.out + r.err).find("est.csr_attributes.macAddress"), std::string::npos)
        << r.out << r.err;

    // Supplying it fixes the enrollment.
    w.agent->write_config(config + kMacConfig);
    ASSERT_EQ(w.agent->ctl({"reload"}).exit_code, 0);
    r = w.agent->ctl({"renew", "--wait"});
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err << w.agent->log();
    st = expect_consistent(w);
    EXPECT_EQ(st["identity"]["key_type"], "ec-p384");
}

TEST(InteropCsrAttrs, FixedKeyTypeTheServerRefusesFailsBeforeEnrolling) {
    AgentWorld w{"csrattrs-fixed", kStrictServer, setup("ec-p256", kMacConfig)};
    w.agent->start();
    auto st = wait_failed(w);
    const auto last = st["renewal"]["last_result"].get<std::string>();
    std::cout << "[ agent    ] " << last << "\n";
    for (const char* part :
         {"EC secp384r1", "key.type is \"ec-p256\"", "set [key] type = \"ec-p384\"", "from-server"})
        EXPECT_NE(last.find(part), std::string::npos) << part << " not in: " << last;
    // Nothing was generated or sent.
    EXPECT_TRUE(w.token_keys().empty());
    const auto stats = w.sandbox->stats();
    EXPECT_EQ(stats["est_enrolls"], 0) << stats;
    EXPECT_EQ(stats["est_rejected"], 0) << stats;
    EXPECT_EQ(w.agent->log().find("generate_key"), std::string::npos) << w.agent->log();
}

}  // namespace
