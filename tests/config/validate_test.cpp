// Validation: each case asserts the exact FILE:LINE: KEY: MESSAGE strings.
#include "tests/config/config_fixture.hpp"

#include <algorithm>
#include <map>

namespace mtls::test {
namespace {

using Errs = std::vector<std::string>;

TEST_F(ConfigTest, BaseIsValidAndFillsDefaults) {
    auto c = load(base());
    ASSERT_TRUE(c);
    EXPECT_EQ(c->source, "agent.toml");
    EXPECT_EQ(c->pkcs11.pin_source, config::Pkcs11::PinSource::env);
    EXPECT_EQ(c->pkcs11.pin_env, "MTLS_TEST_PIN");
    EXPECT_EQ(c->est.auth, config::Est::Auth::basic);
    ASSERT_EQ(c->routes.size(), 1u);
    EXPECT_EQ(c->routes[0].timeouts.idle, std::chrono::milliseconds(60000));
    EXPECT_EQ(c->listener.addresses, (std::vector<std::string>{"127.0.0.1:8480", "[::1]:8480"}));
    EXPECT_EQ(c->renewal.at_fraction, 2.0 / 3.0);
    EXPECT_EQ(c->state_dir, "/var/lib/mtls-agent");
}

TEST_F(ConfigTest, EmptyFileReportsEveryMissingSection) {
    EXPECT_EQ(
        errors(""),
        (Errs{
            "agent.toml: pkcs11: required section [pkcs11] is missing (module, token and a PIN "
            "source)",
            "agent.toml: est: required section [est] is missing (server, trust_anchor or "
            "pinned_sha256, common_name)",
            "agent.toml: routes: at least one [[routes]] entry is required (where local calls are "
            "forwarded)"}));
}

TEST_F(ConfigTest, MissingRequiredKeyUsesTheTableLine) {
    EXPECT_EQ(
        errors(base_with(2, "")),
        (Errs{"agent.toml:1: pkcs11.module: required key is missing (the PKCS#11 module, e.g. "
              "module = \"/usr/lib/softhsm/libsofthsm2.so\")"}));
    EXPECT_EQ(
        errors(base_with(10, "")),
        (Errs{"agent.toml:6: est.common_name: required key is missing (the certificate's subject "
              "CN, e.g. common_name = \"host-17.example\")"}));
}

TEST_F(ConfigTest, WrongType) {
    EXPECT_EQ(
        errors(base() + "pool_max = \"32\"\nadd_forwarded = 1\n"),
        (Errs{"agent.toml:16: routes[0].pool_max: expected an integer, got a string",
              "agent.toml:17: routes[0].add_forwarded: expected true or false, got an integer"}));
    EXPECT_EQ(
        errors(base() + "[listener]\naddresses = \"127.0.0.1:8480\"\n"),
        (Errs{"agent.toml:17: listener.addresses: expected an array of strings, got a string"}));
    EXPECT_EQ(errors(base() + "[logging]\nformat = [\"json\"]\n"),
              (Errs{"agent.toml:17: logging.format: expected a string, got an array"}));
}

TEST_F(ConfigTest, BadUrls) {
    EXPECT_EQ(errors(base_with(15, "upstream = \"htp://x\"")),
              (Errs{"agent.toml:15: routes[0].upstream: \"htp://x\" is not an https URL"}));
    EXPECT_EQ(
        errors(base_with(7, "server = \"http://est.example\"")),
        (Errs{"agent.toml:7: est.server: \"http://est.example\" is not an https URL (plain http is "
              "not allowed here)"}));
    EXPECT_EQ(errors(base_with(15, "upstream = \"https://user:pw@api.example/\"")),
              (Errs{"agent.toml:15: routes[0].upstream: \"https://user:pw@api.example/\" contains "
                    "user:password@; credentials do not belong in URLs"}));
    EXPECT_EQ(
        errors(base_with(15, "upstream = \"api.example/v2\"")),
        (Errs{"agent.toml:15: routes[0].upstream: \"api.example/v2\" is not an https URL (write "
              "https://host[:port]/path)"}));
}

TEST_F(ConfigTest, NonLoopbackListenerNeedsOptIn) {
    std::string text = base() + "[listener]\naddresses = [\"127.0.0.1:8480\", \"0.0.0.0:8480\"]\n";
    EXPECT_EQ(
        errors(text),
        (Errs{
            "agent.toml:17: listener.addresses[1]: \"0.0.0.0:8480\" is not a loopback address; the "
            "proxy attaches this host's identity to every call, so set "
            "listener.allow_non_loopback = true only if other hosts may use it"}));
    auto c = load(text + "allow_non_loopback = true\n");
    ASSERT_TRUE(c);
    EXPECT_TRUE(c->listener.allow_non_loopback);
    EXPECT_EQ(errors(base() + "[metrics]\nlisten = \"[::]:9480\"\n"),
              (Errs{"agent.toml:17: metrics.listen: \"[::]:9480\" is not a loopback address; set "
                    "listener.allow_non_loopback = true to serve metrics to other hosts"}));
}

TEST_F(ConfigTest, ListenAddressSyntax) {
    EXPECT_EQ(
        errors(base() + "[listener]\naddresses = [\"::1:8480\", \"localhost\", \"[::1]:0\", "
                        "\"example.com:80\", \"[::1]:8480\", \"[::1]:8480\"]\n"),
        (Errs{
            "agent.toml:17: listener.addresses[0]: \"::1:8480\" is not host:port (write IPv6 in "
            "brackets, e.g. \"[::1]:8480\")",
            "agent.toml:17: listener.addresses[1]: \"localhost\" is not host:port (e.g. "
            "\"127.0.0.1:8480\")",
            "agent.toml:17: listener.addresses[2]: \"[::1]:0\" has no valid port (1-65535)",
            "agent.toml:17: listener.addresses[3]: \"example.com:80\": the host must be an IP "
            "address or \"localhost\"",
            "agent.toml:17: listener.addresses[5]: duplicate address \"[::1]:8480\" (first at line "
            "17)"}));
}

TEST_F(ConfigTest, AllowedHostsAndOrigins) {
    auto c = load(base() +
                  "[listener]\nallowed_hosts = [\"app.internal\", \"10.1.2.3\", \"*\"]\n"
                  "allowed_origins = [\"http://localhost:3000\", \"https://[::1]:8443\", "
                  "\"https://app.example\"]\n");
    ASSERT_TRUE(c);
    EXPECT_EQ(c->listener.allowed_hosts.size(), 3u);
    EXPECT_EQ(c->listener.allowed_origins.size(), 3u);
    EXPECT_EQ(
        errors(base() + "[listener]\nallowed_hosts = [\"app.internal:8480\"]\n"
                        "allowed_origins = [\"https://app.example/\", \"app.example\"]\n"),
        (Errs{
            "agent.toml:17: listener.allowed_hosts[0]: \"app.internal:8480\" is not a host name "
            "or IP address (no port; \"*\" allows any Host)",
            "agent.toml:18: listener.allowed_origins[0]: \"https://app.example/\" is not a web "
            "origin like \"https://app.example\" or \"http://localhost:3000\" "
            "(scheme://host[:port], no path)",
            "agent.toml:18: listener.allowed_origins[1]: \"app.example\" is not a web origin like "
            "\"https://app.example\" or \"http://localhost:3000\" (scheme://host[:port], no "
            "path)"}));
    // localhost:PORT is 127.0.0.1:PORT: the same socket twice.
    EXPECT_EQ(errors(base() + "[listener]\naddresses = [\"localhost:8480\", \"127.0.0.1:8480\"]\n"),
              (Errs{"agent.toml:17: listener.addresses[1]: duplicate address \"127.0.0.1:8480\" "
                    "(first at line 17)"}));
}

TEST_F(ConfigTest, UnreadablePinFile) {
    EXPECT_EQ(errors(base_with(4, "pin_file = \"" + d() + "/no-such-pin\"")),
              (Errs{"agent.toml:4: pkcs11.pin_file: \"" + d() +
                    "/no-such-pin\" cannot be read: No such file or directory"}));
    EXPECT_EQ(errors(base_with(4, "pin_file = \"" + d() + "\"")),
              (Errs{"agent.toml:4: pkcs11.pin_file: \"" + d() + "\" is not a regular file"}));
    auto c = load(base_with(4, "pin_file = \"" + d() + "/pin\""));
    ASSERT_TRUE(c);
    EXPECT_EQ(c->pkcs11.pin_source, config::Pkcs11::PinSource::file);
}

TEST_F(ConfigTest, WorldReadableSecretFilesAreRefused) {
    dir.write("pin", "1234\n", 0644);
    EXPECT_EQ(
        errors(base_with(4, "pin_file = \"" + d() + "/pin\"")),
        (Errs{"agent.toml:4: pkcs11.pin_file: \"" + d() +
              "/pin\" is readable by every user; restrict it (chmod 0600, or 0640 with the agent's "
              "group)"}));
    dir.write("est-basic", "u:p\n", 0604);
    EXPECT_EQ(errors(base()),
              (Errs{"agent.toml:9: est.basic_credentials: \"" + d() +
                    "/est-basic\" is readable by every user; restrict it (chmod 0600, or "
                    "0640 with the agent's group)"}));
}

TEST_F(ConfigTest, ExactlyOnePinSource) {
    EXPECT_EQ(
        errors(base_with(4, "pin_env = \"A\"\npin_credential = \"token-pin\"")),
        (Errs{
            "agent.toml:5: pkcs11.pin_credential: conflicts with pin_env (line 4): set only one of "
            "pin_file, pin_env or pin_credential"}));
    EXPECT_EQ(
        errors(base_with(4, "")),
        (Errs{"agent.toml:1: pkcs11: set one of pin_file, pin_env or pin_credential (where the "
              "token's user PIN comes from; never the PIN itself)"}));
    EXPECT_EQ(errors(base_with(4, "pin_env = \"1PIN\"")),
              (Errs{"agent.toml:4: pkcs11.pin_env: \"1PIN\" is not an environment variable name "
                    "([A-Za-z_][A-Za-z0-9_]*)"}));
    EXPECT_EQ(
        errors(base_with(4, "pin_credential = \"../pin\"")),
        (Errs{
            "agent.toml:4: pkcs11.pin_credential: \"../pin\" is not a plain name (letters, digits, "
            "'-', '_', '.', '~')"}));
}

TEST_F(ConfigTest, TokenUri) {
    EXPECT_EQ(errors(base_with(3, "token = \"token=t\"")),
              (Errs{"agent.toml:3: pkcs11.token: \"token=t\" is not a pkcs11: URI (RFC 7512), e.g. "
                    "\"pkcs11:token=mtls-agent\""}));
    EXPECT_EQ(
        errors(base_with(3, "token = \"pkcs11:token=t?pin-value=1234\"")),
        (Errs{"agent.toml:3: pkcs11.token: the URI carries a pin-value; remove it and give the PIN "
              "through pkcs11.pin_file, pin_env or pin_credential"}));
}

TEST_F(ConfigTest, EstTrustIsExactlyOne) {
    EXPECT_EQ(
        errors(base_with(8, "pinned_sha256 = \"ab:cd\"")),
        (Errs{"agent.toml:8: est.pinned_sha256: \"ab:cd\" is not a SHA-256 fingerprint (64 hex "
              "digits, colons allowed)"}));
    EXPECT_EQ(
        errors(base_with(8, "")),
        (Errs{"agent.toml:6: est: set one of trust_anchor or pinned_sha256 (how the EST server's "
              "certificate is verified)"}));
    EXPECT_EQ(errors(replace_line(base(), 8,
                                  "trust_anchor = \"" + d() + "/ca.pem\"\npinned_sha256 = \"" +
                                      std::string(64, 'a') + "\"")),
              (Errs{"agent.toml:9: est.pinned_sha256: conflicts with trust_anchor (line 8): set "
                    "only one of "
                    "trust_anchor or pinned_sha256"}));
    std::string colons;
    for (int i = 0; i < 32; ++i) colons += (i ? ":" : "") + std::string("AB");
    EXPECT_TRUE(load(base_with(8, "pinned_sha256 = \"" + colons + "\"")));
}

TEST_F(ConfigTest, EstAuthModes) {
    EXPECT_EQ(errors(base_with(9, "")), (Errs{"agent.toml:6: est.basic_credentials: required key "
                                              "is missing (with auth = \"basic\": a "
                                              "file holding user:password, mode 0600)"}));
    EXPECT_EQ(
        errors(base_with(9, "auth = \"bootstrap-cert\"\nbootstrap_cert = \"" + d() + "/ca.pem\"")),
        (Errs{"agent.toml:6: est.bootstrap_key: required key is missing (with auth = "
              "\"bootstrap-cert\": a pkcs11: URI of the bootstrap key)"}));
    // With bootstrap-cert, basic_credentials is optional: it answers a server that asks for
    // HTTP authentication in addition to the certificate (RFC 7030 §3.2.3).
    auto with_creds = load(base_with(
        9, "auth = \"bootstrap-cert\"\nbootstrap_cert = \"" + d() +
               "/ca.pem\"\nbootstrap_key = \"pkcs11:object=boot\"\nbasic_credentials = \"" + d() +
               "/est-basic\""));
    ASSERT_TRUE(with_creds);
    EXPECT_EQ(with_creds->est.basic_credentials_file, d() + "/est-basic");
    EXPECT_EQ(errors(base_with(9, "auth = \"digest\"")),
              (Errs{"agent.toml:6: est.basic_credentials: required key is missing (with auth = "
                    "\"digest\": a file holding user:password, mode 0600)"}));
    EXPECT_EQ(errors(base_with(9, "auth = \"digest\"\nbasic_credentials = \"" + d() +
                                      "/est-basic\"\nbootstrap_key = \"pkcs11:object=boot\"")),
              (Errs{"agent.toml:11: est.bootstrap_key: only used with auth = \"bootstrap-cert\"; "
                    "remove it or change est.auth"}));
    auto digest =
        load(base_with(9, "auth = \"digest\"\nbasic_credentials = \"" + d() + "/est-basic\""));
    ASSERT_TRUE(digest);
    EXPECT_EQ(digest->est.auth, config::Est::Auth::digest);
    auto c = load(base_with(9, "auth = \"bootstrap-cert\"\nbootstrap_cert = \"" + d() +
                                   "/ca.pem\"\nbootstrap_key = \"pkcs11:object=boot\""));
    ASSERT_TRUE(c);
    EXPECT_EQ(c->est.auth, config::Est::Auth::bootstrap_cert);
    EXPECT_EQ(c->est.bootstrap_key_uri, "pkcs11:object=boot");
}

TEST_F(ConfigTest, BadEnums) {
    EXPECT_EQ(
        errors(base() +
               "[key]\ntype = \"ec-p521\"\n[logging]\nlevel = \"verbose\"\nformat = \"xml\"\n"),
        (Errs{"agent.toml:17: key.type: \"ec-p521\" is not one of \"ec-p256\", \"ec-p384\", "
              "\"rsa-2048\", \"rsa-3072\", \"from-server\"",
              "agent.toml:19: logging.level: \"verbose\" is not one of \"debug\", \"info\", "
              "\"warning\", \"error\"",
              "agent.toml:20: logging.format: \"xml\" is not one of \"text\", \"json\""}));
    EXPECT_EQ(
        errors(base() + "tls_min_version = \"1.1\"\nclient_authorization = \"keep\"\n"),
        (Errs{"agent.toml:16: routes[0].tls_min_version: \"1.1\" is not one of \"1.3\", \"1.2\"",
              "agent.toml:17: routes[0].client_authorization: \"keep\" is not one of \"replace\", "
              "\"reject\""}));
}

TEST_F(ConfigTest, BadDurations) {
    EXPECT_EQ(
        errors(base() + "[routes.timeouts]\nconnect = \"5 s\"\nidle = \"0s\"\ntotal = 30\n"),
        (Errs{
            "agent.toml:17: routes[0].timeouts.connect: \"5 s\" is not a duration (write e.g. "
            "\"1500ms\", \"30s\", \"5m\", \"2h\", \"1h30m\")",
            "agent.toml:18: routes[0].timeouts.idle: \"0s\" is too short (at least 1ms)",
            "agent.toml:19: routes[0].timeouts.total: expected a duration string such as \"30s\", "
            "got an integer"}));
    EXPECT_EQ(errors(base() + "[routes.timeouts]\ndns_ttl = \"2h\"\n"),
              (Errs{"agent.toml:17: routes[0].timeouts.dns_ttl: must be at most \"1h\" (the "
                    "host's addresses are resolved again after it)"}));
    EXPECT_EQ(
        errors(base() + "[key]\nretire_grace = \"1500ms\"\n"),
        (Errs{"agent.toml:17: key.retire_grace: \"1500ms\" is not a whole number of seconds"}));
}

TEST_F(ConfigTest, UnknownKeysWithSuggestion) {
    EXPECT_EQ(errors(base() + "uptream = \"x\"\n[listner]\nport = 1\n[est.extra]\n"),
              (Errs{"agent.toml:16: routes[0].uptream: unknown key (did you mean \"upstream\"?)",
                    "agent.toml:17: listner: unknown key (did you mean \"listener\"?)",
                    "agent.toml:19: est.extra: unknown key"}));
    EXPECT_EQ(
        errors(base_with(4, "pin-env = \"X\"")),
        (Errs{"agent.toml:1: pkcs11: set one of pin_file, pin_env or pin_credential (where the "
              "token's user PIN comes from; never the PIN itself)",
              "agent.toml:4: pkcs11.pin-env: unknown key (did you mean \"pin_env\"?)"}));
}

TEST_F(ConfigTest, DuplicateRoutes) {
    std::string second =
        "[[routes]]\nname = \"partner-a\"\npath_prefix = \"/partner-a/\"\n"
        "upstream = \"https://b.example/\"\n";
    EXPECT_EQ(
        errors(base() + second),
        (Errs{
            "agent.toml:17: routes[1].name: duplicate route name \"partner-a\" (first at line 13)",
            "agent.toml:18: routes[1].path_prefix: duplicate path_prefix \"/partner-a/\" (first at "
            "line 14)"}));
    std::string hosts =
        "[[routes]]\nname = \"b\"\nhost = \"B.example\"\nupstream = \"https://b.example/\"\n"
        "[[routes]]\nname = \"c\"\nhost = \"b.EXAMPLE\"\nupstream = \"https://c.example/\"\n";
    EXPECT_EQ(
        errors(base() + hosts),
        (Errs{"agent.toml:22: routes[2].host: duplicate host \"b.example\" (first at line 18)"}));
}

TEST_F(ConfigTest, RouteMatchIsExactlyOneOfPrefixOrHost) {
    EXPECT_EQ(
        errors(base() + "host = \"a.example\"\n"),
        (Errs{
            "agent.toml:16: routes[0].host: conflicts with path_prefix (line 14): set only one of "
            "path_prefix or host"}));
    EXPECT_EQ(
        errors(base_with(14, "")),
        (Errs{
            "agent.toml:12: routes[0]: set one of path_prefix or host (which local calls take this "
            "route)"}));
    EXPECT_EQ(
        errors(base_with(14, "path_prefix = \"partner-a\"")),
        (Errs{
            "agent.toml:14: routes[0].path_prefix: \"partner-a\" must start and end with '/', e.g. "
            "\"/partner-a/\""}));
    EXPECT_EQ(
        errors(base_with(14, "host = \"bad_host.example\"")),
        (Errs{"agent.toml:14: routes[0].host: \"bad_host.example\" is not a DNS name (letters, "
              "digits, '-' and '.')"}));
}

TEST_F(ConfigTest, SpkiPinsAreBase64Of32Bytes) {
    std::string good = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";       // SHA-256 of ""
    std::string short_pin = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==";  // 31 bytes
    EXPECT_EQ(
        errors(base() + "spki_pins = [\"" + good + "\", \"" + short_pin + "\", \"not base64!\"]\n"),
        (Errs{"agent.toml:16: routes[0].spki_pins[1]: \"" + short_pin +
                  "\" decodes to 31 bytes, not 32 (base64 of the SHA-256 of the "
                  "SubjectPublicKeyInfo)",
              "agent.toml:16: routes[0].spki_pins[2]: \"not base64!\" is not base64"}));
}

TEST_F(ConfigTest, RenewalRanges) {
    EXPECT_EQ(
        errors(base() + "[renewal]\nat_fraction = 1\njitter = 0.5\nbackoff_initial = \"20m\"\n"),
        (Errs{"agent.toml:17: renewal.at_fraction: 1.0 is out of range: it must be greater than 0 "
              "and "
              "less than 1 (e.g. 0.6667 renews after two thirds of the lifetime)",
              "agent.toml:18: renewal.jitter: 0.5 is out of range: it must be at least 0 and less "
              "than 0.5",
              "agent.toml:19: renewal.backoff_initial: backoff_initial (20m) is longer than "
              "backoff_max (10m)"}));
    EXPECT_EQ(
        errors(base() + "[renewal]\nat_fraction = 0.9\njitter = 0.2\n"),
        (Errs{"agent.toml:18: renewal.jitter: at_fraction ± jitter must stay between 0 and 1, or "
              "renewal could fall after expiry"}));
}

TEST_F(ConfigTest, OwnRevocationCheck) {
    EXPECT_EQ(errors(base() + "[renewal]\nrevocation_check = \"crl\"\n"
                              "revocation_check_interval = \"2d\"\n"),
              (Errs{"agent.toml:17: renewal.revocation_check: \"crl\" is not one of "
                    "\"ocsp-then-crl\", \"off\"",
                    "agent.toml:18: renewal.revocation_check_interval: 2d is too long: at most "
                    "\"1d\" (a revoked certificate would be used that long)"}));
    EXPECT_EQ(errors(base() + "[renewal]\nrevocation_check = \"off\"\n"
                              "revocation_check_interval = \"30s\"\n"),
              Errs{});
}

TEST_F(ConfigTest, OAuthProfiles) {
    std::string text = base() +
                       "token_profile = \"partner-b\"\n"           // 16
                       "[[oauth.profiles]]\n"                      // 17
                       "name = \"partner-a\"\n"                    // 18
                       "client_id = \"agent-17\"\n"                // 19
                       "auth_method = \"private_key_jwt\"\n"       // 20
                       "[[oauth.profiles]]\n"                      // 21
                       "name = \"partner-a\"\n"                    // 22
                       "client_id = \"agent-17\"\n"                // 23
                       "resources = [\"http://api.example/\"]\n";  // 24
    EXPECT_EQ(
        errors(text),
        (Errs{
            "agent.toml:16: routes[0].token_profile: \"partner-b\" is not a profile in "
            "[[oauth.profiles]] (defined: \"partner-a\")",
            "agent.toml:17: oauth: set one of issuer or token_endpoint ([[oauth.profiles]] need "
            "the "
            "authorization server's token endpoint)",
            "agent.toml:20: oauth.profiles[0].auth_method: \"private_key_jwt\" is not one of "
            "\"tls_client_auth\", \"self_signed_tls_client_auth\"",
            "agent.toml:22: oauth.profiles[1].name: duplicate profile name \"partner-a\" (first at "
            "line 18)",
            "agent.toml:24: oauth.profiles[1].resources[0]: \"http://api.example/\" is not an "
            "https "
            "URL (plain http is not allowed here)"}));
}

TEST_F(ConfigTest, SetHeaders) {
    EXPECT_EQ(
        errors(base() +
               "token_profile = \"\"\n[routes.set_headers]\nHost = \"x\"\n\"Bad Name\" = \"x\"\n"
               "X-A = \"line\\r\\nInjected: 1\"\nX-B = 1\n"),
        (Errs{
            "agent.toml:18: routes[0].set_headers.Host: is managed by the proxy and cannot be set",
            "agent.toml:19: routes[0].set_headers.Bad Name: \"Bad Name\" is not an HTTP header "
            "name",
            "agent.toml:20: routes[0].set_headers.X-A: the value contains control characters "
            "(CR/LF are not allowed in headers)",
            "agent.toml:21: routes[0].set_headers.X-B: expected a string, got an integer"}));
}

TEST_F(ConfigTest, ModesAndPaths) {
    EXPECT_EQ(
        errors(base() +
               "[admin]\nmode = \"0999\"\nsocket = \"admin.sock\"\n[listener]\nunix_socket_mode = "
               "\"01777\"\n[agent]\nstate_dir = \"var/lib/mtls-agent\"\n"),
        (Errs{"agent.toml:17: admin.mode: \"0999\" is not an octal mode such as \"0660\"",
              "agent.toml:18: admin.socket: \"admin.sock\" is not an absolute path",
              "agent.toml:20: listener.unix_socket_mode: \"01777\" is more than 0777 (no setuid, "
              "setgid or sticky bits)",
              "agent.toml:22: agent.state_dir: \"var/lib/mtls-agent\" is not an absolute path"}));
    auto c = load(base() + "[admin]\nmode = \"0600\"\nallowed_uids = [1000, 1001]\n");
    ASSERT_TRUE(c);
    EXPECT_EQ(c->admin.mode, 0600u);
    EXPECT_EQ(c->admin.allowed_uids, (std::vector<uid_t>{1000, 1001}));
}

TEST_F(ConfigTest, IntegerRanges) {
    EXPECT_EQ(errors(base() + "pool_max = 0\nallowed_uids = [-1]\n"),
              (Errs{"agent.toml:16: routes[0].pool_max: 0 is out of range (1 to 10000)",
                    "agent.toml:17: routes[0].allowed_uids[0]: -1 is not a valid uid/gid (0 to "
                    "4294967294)"}));
}

TEST_F(ConfigTest, ConnectionCaps) {
    auto c = load(base());
    ASSERT_TRUE(c);
    EXPECT_EQ(c->listener.max_connections, 0u);  // derived from RLIMIT_NOFILE at start
    EXPECT_EQ(c->listener.max_connections_per_caller, 0u);
    EXPECT_EQ(c->admin.max_connections_per_uid, 8u);
    auto set = load(base() +
                    "[listener]\nmax_connections = 100\nmax_connections_per_caller = 25\n"
                    "[admin]\nmax_connections_per_uid = 4\n");
    ASSERT_TRUE(set);
    EXPECT_EQ(set->listener.max_connections, 100u);
    EXPECT_EQ(set->listener.max_connections_per_caller, 25u);
    EXPECT_EQ(set->admin.max_connections_per_uid, 4u);
    EXPECT_EQ(errors(base() + "[listener]\nmax_connections = 10\nmax_connections_per_caller = 20\n"
                              "[admin]\nmax_connections_per_uid = 0\n"),
              (Errs{"agent.toml:18: listener.max_connections_per_caller: 20 is more than "
                    "listener.max_connections (10); lower it, or set 0 to derive it",
                    "agent.toml:20: admin.max_connections_per_uid: 0 is out of range (1 to 48)"}));
}

// listener.workers: the number of CPUs (at most 16) when not set; 1 to 64; rendered back.
TEST_F(ConfigTest, ListenerWorkers) {
    auto c = load(base());
    ASSERT_TRUE(c);
    EXPECT_EQ(c->listener.workers, config::default_workers());
    EXPECT_GE(c->listener.workers, 1u);
    EXPECT_LE(c->listener.workers, 16u);
    auto set = load(base() + "[listener]\nworkers = 64\n");
    ASSERT_TRUE(set);
    EXPECT_EQ(set->listener.workers, 64u);
    EXPECT_NE(config::render(*set).find("\nworkers = 64\n"), std::string::npos);
    EXPECT_EQ(errors(base() + "[listener]\nworkers = 0\n"),
              (Errs{"agent.toml:17: listener.workers: 0 is out of range (1 to 64)"}));
    EXPECT_EQ(errors(base() + "[listener]\nworkers = 65\n"),
              (Errs{"agent.toml:17: listener.workers: 65 is out of range (1 to 64)"}));
}

TEST_F(ConfigTest, SeveralErrorsAreReportedAtOnceInFileOrder) {
    std::string text = replace_line(base(), 15, "upstream = \"htp://x\"");
    text = replace_line(text, 7, "server = 443");
    text = replace_line(text, 3, "token = \"token=t\"");
    text += "[logging]\nlevel = \"loud\"\n";
    EXPECT_EQ(errors(text),
              (Errs{"agent.toml:3: pkcs11.token: \"token=t\" is not a pkcs11: URI (RFC 7512), e.g. "
                    "\"pkcs11:token=mtls-agent\"",
                    "agent.toml:7: est.server: expected a string, got an integer",
                    "agent.toml:15: routes[0].upstream: \"htp://x\" is not an https URL",
                    "agent.toml:17: logging.level: \"loud\" is not one of \"debug\", \"info\", "
                    "\"warning\", "
                    "\"error\""}));
}

TEST_F(ConfigTest, TomlSyntaxError) {
    EXPECT_EQ(
        errors(base() + "name = \n"),
        (Errs{"agent.toml:16: TOML syntax error at column 8: Error while parsing key-value pair: "
              "expected value, saw '\\n'"}));
}

TEST_F(ConfigTest, LoadFileReportsUnreadableFile) {
    auto r = config::load_file(d() + "/missing.toml");
    ASSERT_EQ(r.errors.size(), 1u);
    EXPECT_EQ(r.errors[0].to_string(),
              d() + "/missing.toml: cannot read the configuration file: No such file or directory");
    auto path = dir.write("agent.toml", base());
    auto ok = config::load_file(path.string());
    EXPECT_TRUE(ok.errors.empty());
    ASSERT_TRUE(ok.config);
    EXPECT_EQ(ok.config->source, path.string());
}

TEST_F(ConfigTest, KeyTypeFromServerAndCsrAttributes) {
    auto c = load(base() +
                  "[key]\ntype = \"from-server\"\n[est.csr_attributes]\n"
                  "macAddress = \"00:16:3e:12:34:56\"\n\"1.3.6.1.4.1.99999.1\" = \"device-42\"\n"
                  "keyUsage = \"critical,digitalSignature\"\n");
    ASSERT_TRUE(c);
    EXPECT_TRUE(c->key.from_server);
    EXPECT_EQ(c->key.type, config::KeyType::ec_p256);
    ASSERT_EQ(c->est.csr_attributes.size(), 3u);
    std::map<std::string, std::pair<std::string, std::string>> got;
    for (const auto& a : c->est.csr_attributes) got[a.key] = {a.oid, a.value};
    EXPECT_EQ(got["macAddress"].first, "1.3.6.1.1.1.1.22");
    EXPECT_EQ(got["1.3.6.1.4.1.99999.1"].first, "1.3.6.1.4.1.99999.1");
    EXPECT_EQ(got["keyUsage"],
              std::make_pair(std::string("2.5.29.15"), std::string("critical,digitalSignature")));
    auto once = config::render(*c);
    EXPECT_NE(once.find("type = \"from-server\"\n"), std::string::npos) << once;
    EXPECT_NE(once.find("[est.csr_attributes]\n"), std::string::npos) << once;
    EXPECT_NE(once.find("\"1.3.6.1.4.1.99999.1\" = \"device-42\"\n"), std::string::npos) << once;
    auto again = config::load_string(once, "agent.toml");
    for (const auto& e : again.errors) ADD_FAILURE() << e.to_string();
    ASSERT_TRUE(again.config);
    EXPECT_EQ(config::render(*again.config), once);

    auto l = load(base() + "[key]\ntypes = [\"ec-p384\", \"rsa-2048\"]\n");
    ASSERT_TRUE(l);
    EXPECT_FALSE(l->key.from_server);
    EXPECT_EQ(l->key.type, config::KeyType::ec_p384);
    EXPECT_EQ(l->key.types,
              (std::vector<config::KeyType>{config::KeyType::ec_p384, config::KeyType::rsa_2048}));
    once = config::render(*l);
    EXPECT_NE(once.find("types = [\"ec-p384\", \"rsa-2048\"]\n"), std::string::npos) << once;
    EXPECT_EQ(once.find("\ntype = "), std::string::npos) << once;
    auto l2 = load(once);
    ASSERT_TRUE(l2);
    EXPECT_EQ(config::render(*l2), once);
}

TEST_F(ConfigTest, BadKeyTypesAndCsrAttributes) {
    auto errs = errors(base() +
                       "[key]\ntype = \"ec-p256\"\ntypes = [\"ec-p384\", \"ec-p384\", "
                       "\"ec-p521\"]\n"
                       "[est.csr_attributes]\n\"1.2.x\" = \"a\"\nchallengePassword = \"x\"\n"
                       "subjectAltName = \"DNS:x\"\nmacAddress = \"caf\u00e9\"\n"
                       "serialNumber = 5\n\"2.5.4.5\" = \"\"\n");
    const std::vector<std::string> expected = {
        "agent.toml:18: key.types: conflicts with key.type = \"ec-p256\": with a list of "
        "acceptable types, leave type out or set type = \"from-server\"",
        "agent.toml:18: key.types[1]: \"ec-p384\" is listed twice",
        "agent.toml:18: key.types[2]: \"ec-p521\" is not one of \"ec-p256\", \"ec-p384\", "
        "\"rsa-2048\", \"rsa-3072\"",
        "agent.toml:20: est.csr_attributes.1.2.x: is neither an OID in dotted form",
        "agent.toml:21: est.csr_attributes.challengePassword: is set by the agent itself",
        "agent.toml:22: est.csr_attributes.subjectAltName: is made from est.dns_names",
        "agent.toml:23: est.csr_attributes.macAddress: must be ASCII: macAddress values are "
        "IA5String",
        "agent.toml:24: est.csr_attributes.serialNumber: expected a string",
        "agent.toml:25: est.csr_attributes.2.5.4.5: is empty",
    };
    for (const auto& want : expected)
        EXPECT_TRUE(std::any_of(errs.begin(), errs.end(),
                                [&](const std::string& e) { return e.rfind(want, 0) == 0; }))
            << want << "\nnot in:\n"
            << ::testing::PrintToString(errs);
    EXPECT_EQ(errs.size(), expected.size()) << ::testing::PrintToString(errs);
}

TEST(ConfigError, ToStringFormat) {
    config::Error e{"agent.toml", 14, "routes[1].upstream", "\"htp://x\" is not an https URL"};
    EXPECT_EQ(e.to_string(), "agent.toml:14: routes[1].upstream: \"htp://x\" is not an https URL");
}

}  // namespace
}  // namespace mtls::test

namespace mtls::test {

TEST_F(ConfigTest, RevocationPoliciesAndSection) {
    auto c = load(base());
    ASSERT_TRUE(c);
    EXPECT_EQ(c->routes[0].revocation, config::RevocationPolicy::soft_fail);
    EXPECT_EQ(c->est.revocation, config::RevocationPolicy::soft_fail);
    EXPECT_EQ(c->revocation.max_cache_age, std::chrono::hours(24));

    EXPECT_EQ(errors(base() + "revocation = \"strict\"\n"),
              (Errs{"agent.toml:16: routes[0].revocation: \"strict\" is not one of \"off\", "
                    "\"soft-fail\", \"hard-fail\""}));
    EXPECT_EQ(
        errors(base() + "[revocation]\ncrl_files = [\"relative.crl\", \"" + d() +
               "/missing.crl\"]\nmax_cache_age = \"0s\"\nfetch_timeout = \"10ms\"\n"),
        (Errs{"agent.toml:17: revocation.crl_files[0]: \"relative.crl\" is not an absolute path",
              "agent.toml:17: revocation.crl_files[1]: \"" + d() +
                  "/missing.crl\" cannot be read: No such file or directory",
              "agent.toml:18: revocation.max_cache_age: \"0s\" is too short (at least 1s)",
              "agent.toml:19: revocation.fetch_timeout: \"10ms\" is too short (at least "
              "100ms)"}));

    auto hard = load(base_with(10, "common_name = \"h\"\nrevocation = \"hard-fail\"") +
                     "revocation = \"off\"\n[revocation]\ncrl_files = [\"" + d() +
                     "/ca.pem\"]\nmax_cache_age = \"1h\"\n");
    ASSERT_TRUE(hard);
    EXPECT_EQ(hard->est.revocation, config::RevocationPolicy::hard_fail);
    EXPECT_EQ(hard->routes[0].revocation, config::RevocationPolicy::off);
    const auto text = config::render(*hard);
    for (const char* expected : {"revocation = \"hard-fail\"\n", "revocation = \"off\"\n",
                                 "[revocation]\n", "max_cache_age = \"1h\"\n"})
        EXPECT_NE(text.find(expected), std::string::npos) << expected << " not in:\n" << text;
    auto again = config::load_string(text, "agent.toml");
    ASSERT_TRUE(again.config);
    EXPECT_EQ(config::render(*again.config), text);
}

}  // namespace mtls::test
