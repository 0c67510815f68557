// [export] and [renewal] on_renew: every check with its exact FILE:LINE: KEY: MESSAGE, the
// values read, and the rendering loading back.
#include "tests/config/config_fixture.hpp"

#include <sys/stat.h>

#include <filesystem>

namespace mtls::test {
namespace {

using Errs = std::vector<std::string>;

TEST_F(ConfigTest, ExportFilesAreRead) {
    std::filesystem::create_directory(dir / "out");
    const std::string o = d() + "/out/";
    auto c = load(base() + "[export]\ncert = \"" + o + "cert.pem\"\nchain = \"" + o +
                  "chain.pem\"\nfullchain = \"" + o + "fullchain.pem\"\nca = \"" + o +
                  "ca.pem\"\nmode = \"0640\"\nowner = \"65534\"\ngroup = \"0\"\n");
    ASSERT_TRUE(c);
    EXPECT_EQ(c->exports.cert, o + "cert.pem");
    EXPECT_EQ(c->exports.chain, o + "chain.pem");
    EXPECT_EQ(c->exports.fullchain, o + "fullchain.pem");
    EXPECT_EQ(c->exports.ca, o + "ca.pem");
    EXPECT_EQ(c->exports.mode, 0640u);
    EXPECT_EQ(c->exports.owner, "65534");
    EXPECT_EQ(c->exports.group, "0");
    // Defaults: nothing exported, 0644, the agent's owner.
    auto plain = load(base());
    ASSERT_TRUE(plain);
    EXPECT_TRUE(plain->exports.cert.empty());
    EXPECT_EQ(plain->exports.mode, 0644u);
    EXPECT_TRUE(plain->renewal.on_renew.empty());
    EXPECT_EQ(plain->renewal.on_renew_timeout, std::chrono::seconds(30));

    std::string once = config::render(*c);
    EXPECT_NE(once.find("[export]\ncert = \"" + o + "cert.pem\"\n"), std::string::npos) << once;
    EXPECT_NE(once.find("mode = \"0640\"\nowner = \"65534\"\ngroup = \"0\"\n"), std::string::npos)
        << once;
    auto again = config::load_string(once, "agent.toml");
    for (const auto& e : again.errors) ADD_FAILURE() << e.to_string();
    ASSERT_TRUE(again.config);
    EXPECT_EQ(config::render(*again.config), once);
}

TEST_F(ConfigTest, ExportPathsMustBeAbsoluteDistinctAndInAnExistingPrivateDirectory) {
    EXPECT_EQ(errors(base() + "[export]\ncert = \"cert.pem\"\n"),
              (Errs{"agent.toml:17: export.cert: \"cert.pem\" is not an absolute path"}));
    EXPECT_EQ(errors(base() + "[export]\nchain = \"" + d() + "/missing/chain.pem\"\n"),
              (Errs{"agent.toml:17: export.chain: directory \"" + d() +
                    "/missing\" cannot be used: No such file or directory (create it, e.g. "
                    "install -d -m 0755 " +
                    d() + "/missing)"}));
    EXPECT_EQ(errors(base() + "[export]\ncert = \"" + d() + "/a.pem\"\nfullchain = \"" + d() +
                     "/a.pem\"\n"),
              (Errs{"agent.toml:18: export.fullchain: \"" + d() +
                    "/a.pem\" is also export.cert; give each file its own path"}));
    std::filesystem::create_directory(dir / "open");
    ::chmod((dir / "open").c_str(), 0777);
    EXPECT_EQ(errors(base() + "[export]\nca = \"" + d() + "/open/ca.pem\"\n"),
              (Errs{"agent.toml:17: export.ca: directory \"" + d() +
                    "/open\" is writable by every user, who could replace the file; use a "
                    "directory only the agent (and its group) can write"}));
}

TEST_F(ConfigTest, ExportModeAndOwner) {
    EXPECT_EQ(errors(base() + "[export]\nmode = \"0664\"\n"),
              (Errs{"agent.toml:17: export.mode: \"0664\" lets group or others write the files, "
                    "so they could replace the certificate other apps trust; use e.g. \"0644\" "
                    "or \"0640\""}));
    EXPECT_EQ(errors(base() + "[export]\nmode = \"0646\"\n").size(), 1u);
    EXPECT_EQ(errors(base() + "[export]\nowner = \"no-such-user-mtls\"\ngroup = \"no/group\"\n"),
              (Errs{"agent.toml:17: export.owner: no user \"no-such-user-mtls\" on this host (give "
                    "a user name or a numeric uid)",
                    "agent.toml:18: export.group: \"no/group\" is not a plain name (letters, "
                    "digits, '-', '_', '.', '~')"}));
    auto c = load(base() + "[export]\nowner = \"root\"\ngroup = \"root\"\n");
    ASSERT_TRUE(c);
}

TEST_F(ConfigTest, OnRenewIsAnAbsoluteExecutableWithABoundedTimeout) {
    EXPECT_EQ(errors(base() + "[renewal]\non_renew = [\"systemctl\", \"reload\", \"nginx\"]\n"),
              (Errs{"agent.toml:17: renewal.on_renew[0]: \"systemctl\" is not an absolute path; "
                    "the command runs without a shell and without a PATH search (write e.g. "
                    "\"/usr/bin/systemctl\")"}));
    dir.write("not-exec", "#!/bin/sh\n", 0644);
    EXPECT_EQ(errors(base() + "[renewal]\non_renew = [\n  \"" + d() + "/not-exec\",\n]\n"),
              (Errs{"agent.toml:18: renewal.on_renew[0]: \"" + d() +
                    "/not-exec\" is not executable by the agent's user: Permission denied"}));
    EXPECT_EQ(errors(base() + "[renewal]\non_renew = [\"" + d() + "/none\"]\n"),
              (Errs{"agent.toml:17: renewal.on_renew[0]: \"" + d() +
                    "/none\" cannot be found: No such file or directory"}));
    EXPECT_EQ(errors(base() + "[renewal]\non_renew_timeout = \"2h\"\n"),
              (Errs{"agent.toml:17: renewal.on_renew_timeout: \"2h\" is too long (at most 1h): a "
                    "hung command holds back the export of the next certificate"}));
    EXPECT_EQ(errors(base() + "[renewal]\non_renew_timeout = \"10ms\"\n"),
              (Errs{"agent.toml:17: renewal.on_renew_timeout: \"10ms\" is too short (at least "
                    "1s)"}));
    dir.write("hook", "#!/bin/sh\n", 0755);
    auto c = load(base() + "[renewal]\non_renew = [\"" + d() +
                  "/hook\", \"a b\", \"\"]\non_renew_timeout = \"5s\"\n");
    ASSERT_TRUE(c);
    EXPECT_EQ(c->renewal.on_renew, (std::vector<std::string>{d() + "/hook", "a b", ""}));
    EXPECT_EQ(c->renewal.on_renew_timeout, std::chrono::seconds(5));
    std::string once = config::render(*c);
    EXPECT_NE(once.find("on_renew = [\"" + d() +
                        "/hook\", \"a b\", \"\"]\non_renew_timeout = "
                        "\"5s\"\n"),
              std::string::npos)
        << once;
}

}  // namespace
}  // namespace mtls::test
