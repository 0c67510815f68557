// `mtls-agent --check-config` as an operator runs it: the built binary, a real file.
#include "config/config.hpp"
#include "tests/config/config_fixture.hpp"
#include "tests/support/subprocess.hpp"

namespace mtls::test {
namespace {

const std::string kAgent = std::string(MTLS_BINARY_DIR) + "/agent/mtls-agent";

TEST_F(ConfigTest, CheckConfigReportsEveryErrorAndExits1) {
    std::string text = replace_line(base(), 15, "upstream = \"htp://x\"");
    text += "[listener]\naddresses = [\"0.0.0.0:8480\"]\n";
    auto path = dir.write("broken.toml", text, 0644).string();
    auto r = run({kAgent, "--check-config", "-c", path});
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(
        r.err,
        path + ":15: routes[0].upstream: \"htp://x\" is not an https URL\n" + path +
            ":17: listener.addresses[0]: \"0.0.0.0:8480\" is not a loopback address; the proxy "
            "attaches this host's identity to every call, so set listener.allow_non_loopback = "
            "true only if other hosts may use it\n");
}

TEST_F(ConfigTest, CheckConfigPrintsEffectiveConfigAndExits0) {
    auto path = dir.write("agent.toml", base(), 0644).string();
    const std::string pin = "pin-value-31337";
    auto r = run({kAgent, "--config", path, "--check-config"}, {"MTLS_TEST_PIN=" + pin});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.err, "");
    auto loaded = config::load_file(path);
    ASSERT_TRUE(loaded.config);
    EXPECT_EQ(r.out, config::render(*loaded.config));
    EXPECT_EQ(r.out.find(pin), std::string::npos);
}

TEST(CheckConfigCli, MissingFileHelpAndBadUsage) {
    auto missing = run({kAgent, "--check-config", "-c", "/nonexistent/mtls-agent.toml"});
    EXPECT_EQ(missing.exit_code, 1);
    EXPECT_EQ(missing.err,
              "/nonexistent/mtls-agent.toml: cannot read the configuration file: No such file or "
              "directory\n");

    auto help = run({kAgent, "--help"});
    EXPECT_EQ(help.exit_code, 0);
    for (const char* section :
         {"NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "FILES", "EXIT STATUS", "EXAMPLES"})
        EXPECT_NE(help.out.find(std::string("\n") + section + "\n"), std::string::npos) << section;

    auto bad = run({kAgent, "--no-such-flag"});
    EXPECT_EQ(bad.exit_code, 2);
    EXPECT_NE(bad.err.find("--no-such-flag"), std::string::npos) << bad.err;
}

}  // namespace
}  // namespace mtls::test
