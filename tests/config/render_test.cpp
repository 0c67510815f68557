// render(): the documented sample validates and renders; the rendering loads back to the
// same configuration; PINs, credentials and credential-like header values never appear.
#include "config/config.hpp"
#include "tests/config/config_fixture.hpp"

#include <cstdlib>
#include <fstream>
#include <regex>
#include <sstream>

namespace mtls::test {
namespace {

std::string read_text(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
    for (auto pos = s.find(from); pos != std::string::npos; pos = s.find(from, pos + to.size()))
        s.replace(pos, from.size(), to);
    return s;
}

class SampleTest : public ConfigTest {
  protected:
    // The sample names files under /etc/mtls-agent/, which a test machine does not have:
    // the test points those paths into its temporary directory and creates the files.
    std::string sample() {
        std::filesystem::create_directory(dir / "etc");
        dir.write("etc/est-ca.pem", "x\n", 0644);
        dir.write("etc/est-basic", "user:password\n", 0600);
        dir.write("etc/as-ca.pem", "x\n", 0644);
        dir.write("etc/partner-a-ca.pem", "x\n", 0644);
        std::string text = read_text(std::string(MTLS_SOURCE_DIR) + "/config/mtls-agent.toml");
        EXPECT_FALSE(text.empty());
        return replace_all(text, "/etc/mtls-agent/", d() + "/etc/");
    }
};

TEST_F(SampleTest, SampleValidates) {
    auto r = config::load_string(sample(), "mtls-agent.toml");
    for (const auto& e : r.errors) ADD_FAILURE() << e.to_string();
    ASSERT_TRUE(r.config);
    const auto& c = *r.config;
    EXPECT_EQ(c.pkcs11.pin_source, config::Pkcs11::PinSource::credential);
    EXPECT_EQ(c.pkcs11.pin_credential, "token-pin");  // what the packaged unit loads
    EXPECT_EQ(c.admin.group, "mtls-admin");           // what sysusers.d creates
    EXPECT_EQ(c.est.basic_credentials_file, d() + "/etc/est-basic");
    ASSERT_EQ(c.oauth.profiles.size(), 1u);
    ASSERT_EQ(c.routes.size(), 1u);
    EXPECT_EQ(c.routes[0].token_profile, c.oauth.profiles[0].name);
    EXPECT_EQ(c.routes[0].path_prefix, "/partner-a/");
    EXPECT_EQ(c.metrics.listen, "127.0.0.1:9480");
}

// Every key the agent knows (every key render() writes) is documented in the sample.
TEST_F(SampleTest, SampleDocumentsEveryKey) {
    std::string text = sample();
    auto c = config::load_string(text, "mtls-agent.toml").config;
    ASSERT_TRUE(c);
    // Make render() show the keys the sample's choices leave out.
    c->est.pinned_sha256 = std::string(64, 'a');
    c->oauth.token_endpoint = "https://as.example/token";
    c->oauth.refresh_skew = std::chrono::seconds(60);
    c->routes[0].host = "x.example";
    std::string rendered = config::render(*c);
    c->est.auth = config::Est::Auth::bootstrap_cert;
    c->pkcs11.pin_source = config::Pkcs11::PinSource::file;
    rendered += config::render(*c);
    c->pkcs11.pin_source = config::Pkcs11::PinSource::env;  // the sample's choice is credential
    c->pkcs11.pin_env = "MTLS_AGENT_PIN";
    rendered += config::render(*c);

    std::regex key_line(R"(^([A-Za-z_]+) = )");
    std::istringstream in(rendered);
    std::string line;
    int keys = 0;
    while (std::getline(in, line)) {
        std::smatch m;
        if (!std::regex_search(line, m, key_line) || line.rfind("X-", 0) == 0) continue;
        ++keys;
        std::string k = m[1];
        bool documented = text.find("\n" + k + " = ") != std::string::npos ||
                          text.find("\n# " + k + " = ") != std::string::npos;
        EXPECT_TRUE(documented) << "key " << k << " is not in config/mtls-agent.toml";
    }
    EXPECT_GT(keys, 60);
}

TEST_F(SampleTest, RenderLoadsBackToTheSameConfiguration) {
    auto first = config::load_string(sample(), "mtls-agent.toml");
    ASSERT_TRUE(first.config);
    std::string once = config::render(*first.config);
    auto second = config::load_string(once, "mtls-agent.toml");
    for (const auto& e : second.errors) ADD_FAILURE() << e.to_string() << "\n" << once;
    ASSERT_TRUE(second.config);
    EXPECT_EQ(config::render(*second.config), once);
}

TEST_F(ConfigTest, RenderShowsNonDefaultChoicesAndLoadsBack) {
    std::string text =
        base_with(9, "auth = \"bootstrap-cert\"\nbootstrap_cert = \"" + d() +
                         "/ca.pem\"\nbootstrap_key = \"pkcs11:object=boot\"") +
        "token_profile = \"p\"\n"
        "[routes.set_headers]\n\"X-Weird.Name!\" = \"a\\\"b\\\\c\"\n"
        "[oauth]\ntoken_endpoint = \"https://as.example/token\"\nrefresh_skew = \"90s\"\n"
        "[[oauth.profiles]]\nname = \"p\"\nclient_id = \"c\"\n"
        "auth_method = \"self_signed_tls_client_auth\"\n"
        "[[routes]]\nname = \"h\"\nhost = \"H.Example\"\nupstream = \"https://h.example/\"\n"
        "[routes.timeouts]\nconnect = \"1500ms\"\ntotal = \"1h30m\"\ndns_ttl = \"0s\"\n"
        "[listener]\nunix_socket = \"/run/x.sock\"\nunix_socket_mode = \"0600\"\n"
        "[renewal]\nrevocation_check = \"off\"\nrevocation_check_interval = \"15m\"\n";
    auto c = load(text);
    ASSERT_TRUE(c);
    std::string once = config::render(*c);
    for (const char* expected :
         {"auth = \"bootstrap-cert\"\n", "bootstrap_key = \"pkcs11:object=boot\"\n",
          "token_endpoint = \"https://as.example/token\"\n", "refresh_skew = \"90s\"\n",
          "auth_method = \"self_signed_tls_client_auth\"\n", "host = \"h.example\"\n",
          "connect = \"1500ms\"\n", "total = \"90m\"\n", "dns_ttl = \"0s\"\n",
          "unix_socket_mode = \"0600\"\n", "\"X-Weird.Name!\" = \"a\\\"b\\\\c\"\n",
          "revocation_check = \"off\"\n", "revocation_check_interval = \"15m\"\n"})
        EXPECT_NE(once.find(expected), std::string::npos) << expected << " not in:\n" << once;
    auto again = config::load_string(once, "agent.toml");
    for (const auto& e : again.errors) ADD_FAILURE() << e.to_string();
    ASSERT_TRUE(again.config);
    EXPECT_EQ(config::render(*again.config), once);
    EXPECT_EQ(again.config->routes[0].set_headers.at("X-Weird.Name!"), "a\"b\\c");
}

TEST_F(ConfigTest, RenderNeverShowsPinsOrCredentials) {
    const std::string env_pin = "env-pin-4711-do-not-print";
    ::setenv("MTLS_TEST_PIN", env_pin.c_str(), 1);
    auto c =
        load(base() +
             "[routes.set_headers]\nX-Api-Key = \"api-key-value-1234\"\nX-Plain = \"visible\"\n");
    ASSERT_TRUE(c);
    std::string out = config::render(*c);
    EXPECT_EQ(out.find(env_pin), std::string::npos);
    EXPECT_NE(out.find("pin_env = \"MTLS_TEST_PIN\""), std::string::npos);
    EXPECT_EQ(out.find("user:password"), std::string::npos);  // the est-basic file's content
    EXPECT_NE(out.find("basic_credentials = \"" + d() + "/est-basic\""), std::string::npos);
    EXPECT_EQ(out.find("api-key-value-1234"), std::string::npos);
    EXPECT_NE(out.find("X-Api-Key = \"(redacted sha256:"), std::string::npos);
    EXPECT_NE(out.find("X-Plain = \"visible\""), std::string::npos);

    dir.write("pin", "file-pin-9876-do-not-print\n", 0600);
    auto f = load(base_with(4, "pin_file = \"" + d() + "/pin\""));
    ASSERT_TRUE(f);
    std::string out2 = config::render(*f);
    EXPECT_EQ(out2.find("file-pin-9876"), std::string::npos);
    EXPECT_NE(out2.find("pin_file = \"" + d() + "/pin\""), std::string::npos);
    ::unsetenv("MTLS_TEST_PIN");
}

}  // namespace
}  // namespace mtls::test
