// Tests of the partner sandbox, driven only with curl and openssl (and bash), never with
// the agent's code: the EST flow, the OAuth AS with certificate-bound tokens, the partner
// API, the echo endpoints, the fault modes, resumption counters, start-up and SIGTERM.
#include "common/atomic_file.hpp"
#include "common/encoding.hpp"
#include "common/ossl.hpp"
#include "tests/support/sandbox_process.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <string>

namespace mtls::test {
namespace {

std::string describe(const CommandResult& r) {
    return "exit " + std::to_string(r.exit_code) + (r.timed_out ? " (timed out)" : "") +
           "\n--- stdout ---\n" + r.out.substr(0, 4000) + "\n--- stderr ---\n" +
           r.err.substr(0, 4000);
}

#define EXPECT_OK(r) EXPECT_EQ((r).exit_code, 0) << describe(r)
#define ASSERT_OK(r) ASSERT_EQ((r).exit_code, 0) << describe(r)

nlohmann::json parse(const std::string& text) {
    auto j = nlohmann::json::parse(text, nullptr, false);
    if (j.is_discarded()) ADD_FAILURE() << "not JSON: " << text.substr(0, 2000);
    return j;
}

// The claims of a JWT (no verification: the test only reads them).
nlohmann::json jwt_claims(const std::string& jwt) {
    auto d1 = jwt.find('.'), d2 = jwt.rfind('.');
    auto payload = encoding::base64url_decode(jwt.substr(d1 + 1, d2 - d1 - 1));
    if (!payload) return {};
    return parse(*payload);
}

// Shell snippets shared by the tests. $W is the work directory, $CA the CA bundle.
constexpr const char* kEnrollFn = R"SH(
# make_csr NAME SUBJECT [SAN] [PASSWORD]: key + base64 DER CSR in $W/NAME.{key,csr.b64}
make_csr() {
  local name=$1 subj=$2 san=${3:-} pw=${4:-}
  local args=(-new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$W/$name.key"
              -outform DER -out "$W/$name.csr.der")
  [ -n "$san" ] && args+=(-addext "subjectAltName=$san")
  if [ -n "$pw" ]; then
    # Attributes come from the config only when the subject does too (no -subj).
    { printf '[req]\ndistinguished_name=dn\nattributes=attrs\nprompt=no\n[dn]\n'
      echo "$subj" | tr '/' '\n' | sed '/^$/d'
      printf '[attrs]\nchallengePassword=%s\n' "$pw"; } > "$W/$name.cnf"
    args+=(-config "$W/$name.cnf")
  else
    args+=(-subj "$subj")
  fi
  openssl req "${args[@]}" 2>/dev/null
  base64 -w 64 < "$W/$name.csr.der" > "$W/$name.csr.b64"
}
# enroll NAME SUBJECT [SAN]: simpleenroll with HTTP Basic; the cert in $W/NAME.pem
enroll() {
  make_csr "$1" "$2" "${3:-}"
  curl -sS --fail-with-body --cacert "$CA" -u "$EST_USER" -H 'Content-Type: application/pkcs10' \
       --data-binary @"$W/$1.csr.b64" "$EST/simpleenroll" -o "$W/$1.p7.b64"
  base64 -d < "$W/$1.p7.b64" | openssl pkcs7 -inform DER -print_certs | openssl x509 -out "$W/$1.pem"
}
x5t() { openssl x509 -in "$1" -outform DER | openssl dgst -sha256 -binary | basenc --base64url | tr -d =; }
)SH";

class SandboxTest : public ::testing::Test {
  protected:
    static inline std::unique_ptr<TempDir> dir_;
    static inline std::unique_ptr<SandboxProcess> sandbox_;
    static inline std::map<std::string, std::string> env_;

    static CommandResult sh(const std::string& script,
                            std::chrono::milliseconds timeout = std::chrono::seconds(60)) {
        return run_shell(std::string(kEnrollFn) + script, env_, timeout);
    }

    static void SetUpTestSuite() {
        dir_ = std::make_unique<TempDir>("sandbox-test");
        auto w = dir_->path().string();
        files::write_atomic(dir_->path() / "est-basic", "# test credentials\ntester:s3cret:pass\n",
                            0600);
        env_ = {{"W", w}, {"EST_USER", "tester:s3cret:pass"}};
        // Self-signed client certificates for self_signed_tls_client_auth.
        auto r = sh(R"SH(
          for n in self1 self2; do
            openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
              -keyout "$W/$n.key" -out "$W/$n.pem" -subj "/CN=$n" 2>/dev/null
          done
          x5t "$W/self1.pem"
          # RFC 7638 thumbprint of self2's key: P-256 SPKI DER ends with 04 || x || y.
          openssl pkey -in "$W/self2.key" -pubout -outform DER | tail -c 64 > "$W/self2.xy"
          x=$(head -c 32 "$W/self2.xy" | basenc --base64url | tr -d =)
          y=$(tail -c 32 "$W/self2.xy" | basenc --base64url | tr -d =)
          printf '{"crv":"P-256","kty":"EC","x":"%s","y":"%s"}' "$x" "$y" \
            | openssl dgst -sha256 -binary | basenc --base64url | tr -d =
        )SH");
        ASSERT_OK(r);
        auto nl = r.out.find('\n');
        std::string self1_x5t = r.out.substr(0, nl);
        std::string self2_jkt = r.out.substr(nl + 1);
        while (!self2_jkt.empty() && self2_jkt.back() == '\n') self2_jkt.pop_back();
        nlohmann::json clients = {
            {"clients",
             {{{"client_id", "agent-dn"},
               {"token_endpoint_auth_method", "tls_client_auth"},
               {"tls_client_auth_subject_dn", "CN=host-1,OU=payments,O=Partner"}},
              {{"client_id", "agent-san"},
               {"token_endpoint_auth_method", "tls_client_auth"},
               {"tls_client_auth_san_dns", "host-1.example"}},
              {{"client_id", "agent-2"},
               {"token_endpoint_auth_method", "tls_client_auth"},
               {"tls_client_auth_subject_dn", "O=Partner, CN=host-2"}},
              {{"client_id", "agent-scoped"},
               {"tls_client_auth_subject_dn", "CN=host-1,OU=payments,O=Partner"},
               {"scope", "orders:read orders:write"},
               {"resources", {"https://api.partner.example/"}}},
              {{"client_id", "agent-nocc"},
               {"tls_client_auth_subject_dn", "CN=host-1,OU=payments,O=Partner"},
               {"grant_types", {"authorization_code"}}},
              {{"client_id", "self-x5t"},
               {"token_endpoint_auth_method", "self_signed_tls_client_auth"},
               {"x5t#S256", self1_x5t}},
              {{"client_id", "self-jkt"},
               {"token_endpoint_auth_method", "self_signed_tls_client_auth"},
               {"jkt", self2_jkt}}}}};
        files::write_atomic(dir_->path() / "clients.json", clients.dump(2), 0600);
        sandbox_ = std::make_unique<SandboxProcess>(
            dir_->path(),
            std::vector<std::string>{"--est-credentials", w + "/est-basic", "--clients",
                                     w + "/clients.json", "--cert-validity", "3600", "--est-label",
                                     "partner-a", "--log-level", "warning"});
        env_["CA"] = sandbox_->ca_bundle();
        env_["EST"] = sandbox_->est_url();
        env_["AS"] = sandbox_->as_issuer();
        env_["API"] = sandbox_->api_url();
        env_["EST_PORT"] = std::to_string(sandbox_->est_port());
        r = sh(R"SH(
          enroll host-1 "/O=Partner/OU=payments/CN=host-1" "DNS:host-1.example,IP:127.0.0.1"
          enroll host-2 "/O=Partner/CN=host-2"
        )SH");
        ASSERT_OK(r);
    }

    static void TearDownTestSuite() {
        if (sandbox_) {
            EXPECT_EQ(sandbox_->stop(), 0) << sandbox_->process().log();
        }
        sandbox_.reset();
        dir_.reset();
    }

    void SetUp() override {
        ASSERT_TRUE(sandbox_) << "sandbox did not start";
        sandbox_->set_mode(
            "as=normal&est=normal&est_retry=0&est_pop=off&est_variant=normal&est_base64=lines&"
            "est_response_base64=lines&reenroll_auth=none&enroll_auth=basic&est_202=normal&"
            "est_status_field=0&digest_algorithms=both");
    }

    // A token for `client` with the given cert/key names from $W; returns the JSON answer.
    static nlohmann::json token(const std::string& client, const std::string& cert,
                                const std::string& extra = "") {
        auto r = sh("curl -sS --fail-with-body --cacert \"$CA\" --cert \"$W/" + cert +
                    ".pem\" --key \"$W/" + cert +
                    ".key\" -d grant_type=client_credentials -d client_id=" + client + " " + extra +
                    " \"$AS/mtls/token\"");
        EXPECT_OK(r);
        return parse(r.out);
    }
};

// ---- start-up, info file, shutdown -------------------------------------------------------

TEST_F(SandboxTest, InfoFileNamesLoopbackPortsAndCaFiles) {
    const auto& info = sandbox_->info();
    for (const char* svc : {"est", "as", "api"}) {
        EXPECT_GT(info[svc]["port"].get<int>(), 0) << svc;
    }
    EXPECT_NE(sandbox_->est_port(), sandbox_->api_port());
    EXPECT_EQ(info["bind"], "127.0.0.1");
    EXPECT_TRUE(std::filesystem::exists(info["ca"]["bundle"].get<std::string>()));
    EXPECT_TRUE(std::filesystem::exists(info["ca"]["root"].get<std::string>()));
    EXPECT_EQ(info["est"]["url"],
              "https://127.0.0.1:" + std::to_string(sandbox_->est_port()) + "/.well-known/est");
    // The CA bundle verifies the server certificate for 127.0.0.1 and localhost.
    auto r = sh(R"SH(
      openssl verify -CAfile "$CA" -purpose sslserver "$(dirname "$CA")/server.pem"
      curl -sS --fail --cacert "$CA" "https://localhost:${API##*:}/" >/dev/null
      ss -ltn | awk '{print $4}' | grep -E ":${API##*:}$"
    )SH");
    ASSERT_OK(r);
    EXPECT_NE(r.out.find("127.0.0.1:"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("0.0.0.0"), std::string::npos) << r.out;
}

TEST(SandboxLifecycle, StartsUnderASecondAndExitsZeroOnSigterm) {
    TempDir dir("sandbox-life");
    // Cold start (creates the CA) and warm start (reuses it).
    for (int round = 0; round < 2; ++round) {
        SandboxProcess sb(dir.path(), {"--log-level", "warning"});
        EXPECT_EQ(sb.info()["ca"]["created"].get<bool>(), round == 0);
#if defined(__SANITIZE_ADDRESS__)
        EXPECT_LT(sb.startup_time().count(), 3000);
#else
        EXPECT_LT(sb.startup_time().count(), 1000);
#endif
        // An idle keep-alive connection must not hold up the shutdown.
        auto client = std::make_unique<ChildProcess>(
            std::vector<std::string>{"bash", "-c",
                                     "sleep 30 | openssl s_client -quiet -connect 127.0.0.1:" +
                                         std::to_string(sb.api_port()) + " -CAfile " +
                                         sb.ca_bundle()},
            dir.path() / "s_client.log");
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        // Poll until the idle client's handshake is counted (the stats request is another).
        while (sb.stats()["services"]["api"]["full_handshakes"].get<int>() < 2 &&
               std::chrono::steady_clock::now() < deadline) {
        }
        auto t0 = std::chrono::steady_clock::now();
        EXPECT_EQ(sb.stop(std::chrono::seconds(5)), 0) << sb.process().log();
        EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
        client->stop();
    }
}

TEST(SandboxLifecycle, RefusesNonLoopbackBind) {
    TempDir dir("sandbox-bind");
    auto r = run_command({SandboxProcess::default_binary().string(), "--ca-dir",
                          (dir.path() / "ca").string(), "--bind", "0.0.0.0"});
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find("loopback"), std::string::npos) << r.err;
}

// ---- EST ----------------------------------------------------------------------------------

TEST_F(SandboxTest, EstCacertsIsBase64Pkcs7WithRootAndIssuingCa) {
    auto r = sh(R"SH(
      curl -sS --fail -D "$W/cacerts.h" --cacert "$CA" "$EST/cacerts" -o "$W/cacerts.b64"
      tr -d '\r' < "$W/cacerts.h" | grep -i '^content-type: application/pkcs7-mime$'
      tr -d '\r' < "$W/cacerts.h" | grep -i '^content-transfer-encoding: base64$'
      base64 -d < "$W/cacerts.b64" | openssl pkcs7 -inform DER -print_certs | grep '^subject='
      # With a CA label.
      curl -sS --fail --cacert "$CA" "$EST/partner-a/cacerts" | base64 -d \
        | openssl pkcs7 -inform DER -print_certs | grep -c '^subject='
    )SH");
    ASSERT_OK(r);
    EXPECT_NE(r.out.find("mtls-agent sandbox root CA"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("mtls-agent sandbox issuing CA"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("\n2\n"), std::string::npos) << r.out;
    auto unknown =
        sh(R"SH(curl -sS -o /dev/null -w '%{http_code}' --cacert "$CA" "$EST/nope/cacerts")SH");
    EXPECT_EQ(unknown.out, "404");
}

TEST_F(SandboxTest, EstCsrattrsIsBase64DerWithTheConfiguredAttributes) {
    auto r = sh(R"SH(
      curl -sS --fail -D "$W/attrs.h" --cacert "$CA" "$EST/csrattrs" | base64 -d > "$W/attrs.der"
      tr -d '\r' < "$W/attrs.h" | grep -i '^content-type: application/csrattrs$'
      openssl asn1parse -inform DER -in "$W/attrs.der"
    )SH");
    ASSERT_OK(r);
    EXPECT_NE(r.out.find("ecdsa-with-SHA256"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("id-ecPublicKey"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("prime256v1"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("challengePassword"), std::string::npos) << r.out;
    // Proof-of-possession on: challengePassword is asked for.
    sandbox_->set_mode("est_pop=tls-exporter");
    r = sh(
        R"SH(curl -sS --fail --cacert "$CA" "$EST/csrattrs" | base64 -d | openssl asn1parse -inform DER)SH");
    ASSERT_OK(r);
    EXPECT_NE(r.out.find("challengePassword"), std::string::npos) << r.out;
}

// A strict profile (EJBCA, libest with csrattrs enforcement): csrattrs asks for an EC P-384
// key, SHA-384 (a bare hash OID, as libest sends) and macAddress; a CSR lacking any of them
// is rejected with 400 naming each; the body ends in a NUL like a C string's.
TEST_F(SandboxTest, EstEnforcedCsrattrsNameWhatTheCsrLacks) {
    struct Restore {  // the sandbox is shared by the suite's tests
        ~Restore() {
            try {
                sandbox_->set_mode(
                    "est_csrattrs=default&est_enforce_csrattrs=0&est_csrattrs_nul=0");
            } catch (const std::exception& e) {
                ADD_FAILURE() << e.what();
            }
        }
    } restore;
    sandbox_->set_mode(
        "est_csrattrs=id-ecPublicKey%3Dsecp384r1,sha384,macAddress&est_enforce_csrattrs=1&"
        "est_csrattrs_nul=1");
    auto r = sh(R"SH(
      curl -sS --fail --cacert "$CA" "$EST/csrattrs" -o "$W/a.b64"
      echo "last=$(tail -c 1 "$W/a.b64" | od -An -tx1 | tr -d ' ')"
      tr -d '\000' < "$W/a.b64" | base64 -d | openssl asn1parse -inform DER
      code() { curl -sS -o "$W/out" -w '%{http_code}' --cacert "$CA" "$@"; }
      p10=(-H 'Content-Type: application/pkcs10')
      make_csr s1 "/CN=strict-1"
      echo "weak=$(code -u "$EST_USER" "${p10[@]}" --data-binary @"$W/s1.csr.b64" "$EST/simpleenroll")"
      cat "$W/out"
      printf '[req]\ndistinguished_name=dn\nattributes=attrs\nprompt=no\n[dn]\nCN=strict-2\n' > "$W/s2.cnf"
      printf '[attrs]\n1.3.6.1.1.1.1.22=00:16:3e:12:34:56\n' >> "$W/s2.cnf"
      openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-384 -nodes -sha384 \
        -keyout "$W/s2.key" -config "$W/s2.cnf" -outform DER -out "$W/s2.csr.der" 2>/dev/null
      base64 < "$W/s2.csr.der" > "$W/s2.csr.b64"
      echo "strict=$(code -u "$EST_USER" "${p10[@]}" --data-binary @"$W/s2.csr.b64" "$EST/simpleenroll")"
      # The same key signing with SHA-256: only the digest is named.
      openssl req -new -key "$W/s2.key" -sha256 -config "$W/s2.cnf" -outform DER -out "$W/s3.csr.der"
      base64 < "$W/s3.csr.der" > "$W/s3.csr.b64"
      echo "sha256=$(code -u "$EST_USER" "${p10[@]}" --data-binary @"$W/s3.csr.b64" "$EST/simpleenroll")"
      cat "$W/out"
    )SH");
    ASSERT_OK(r);
    for (const char* want :
         {"last=00", "secp384r1", "sha384", ":1.3.6.1.1.1.1.22", "weak=400",
          "the key must be EC secp384r1, the CSR's is EC prime256v1; the CSR must be signed with "
          "SHA384, it is signed with ecdsa-with-SHA256; CSR attribute macAddress "
          "(1.3.6.1.1.1.1.22) is missing",
          "strict=200", "sha256=400",
          "the CSR does not satisfy the CSR attributes: the CSR must be signed with SHA384, it is "
          "signed with ecdsa-with-SHA256\n"})
        EXPECT_NE(r.out.find(want), std::string::npos) << want << " not in:\n" << r.out;

    // At run time: nothing asked (204), and a bad spec is refused.
    sandbox_->set_mode("est_csrattrs=none");
    r = sh(R"SH(curl -sS -o /dev/null -w '%{http_code}' --cacert "$CA" "$EST/csrattrs")SH");
    EXPECT_EQ(r.out, "204");
    EXPECT_THROW(sandbox_->set_mode("est_csrattrs=no-such-oid-name"), std::runtime_error);
}

TEST_F(SandboxTest, EstSimpleenrollIssuesClientCertWithCsrSubjectAndSans) {
    auto r = sh(R"SH(
      make_csr e1 "/O=Partner/OU=payments/CN=enroll-1" "DNS:enroll-1.example,URI:spiffe://partner/e1"
      curl -sS --fail -D "$W/e1.h" --cacert "$CA" -u "$EST_USER" -H 'Content-Type: application/pkcs10' \
           --data-binary @"$W/e1.csr.b64" "$EST/simpleenroll" -o "$W/e1.p7.b64"
      tr -d '\r' < "$W/e1.h" | grep -i '^content-type: application/pkcs7-mime; *smime-type=certs-only$'
      tr -d '\r' < "$W/e1.h" | grep -i '^content-transfer-encoding: base64$'
      base64 -d < "$W/e1.p7.b64" | openssl pkcs7 -inform DER -print_certs | openssl x509 -out "$W/e1.pem"
      openssl x509 -in "$W/e1.pem" -noout -subject -issuer -ext subjectAltName,extendedKeyUsage,basicConstraints
      openssl verify -CAfile "$CA" -purpose sslclient "$W/e1.pem"
      # The certificate is for the CSR's key.
      openssl x509 -in "$W/e1.pem" -noout -pubkey > "$W/e1.certpub"
      openssl pkey -in "$W/e1.key" -pubout > "$W/e1.keypub"
      cmp "$W/e1.certpub" "$W/e1.keypub"
      # Validity is --cert-validity (3600 s).
      nb=$(openssl x509 -in "$W/e1.pem" -noout -startdate | cut -d= -f2)
      na=$(openssl x509 -in "$W/e1.pem" -noout -enddate | cut -d= -f2)
      echo "lifetime=$(( $(date -d "$na" +%s) - $(date -d "$nb" +%s) ))"
    )SH");
    ASSERT_OK(r);
    EXPECT_NE(r.out.find("subject=O = Partner, OU = payments, CN = enroll-1"), std::string::npos)
        << r.out;
    EXPECT_NE(r.out.find("DNS:enroll-1.example"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("URI:spiffe://partner/e1"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("TLS Web Client Authentication"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("CA:FALSE"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("lifetime=3600"), std::string::npos) << r.out;
    EXPECT_GE(sandbox_->stats()["est_enrolls"].get<int>(), 1);
}

// Strict by default, like libest (its base64 BIO decoder reads lines): one unterminated
// base64 line is "Invalid or corrupted pkcs10 request". est_base64=lenient accepts it.
TEST_F(SandboxTest, EstBase64LinesByDefaultLenientOnRequest) {
    const char* script = R"SH(
      make_csr e2 "/CN=enroll-2"
      base64 -w 0 < "$W/e2.csr.der" > "$W/e2.oneline"
      echo "status=$(curl -sS -o "$W/e2.out" -w '%{http_code}' --cacert "$CA" -u "$EST_USER" \
           -H 'Content-Type: application/pkcs10' --data-binary @"$W/e2.oneline" \
           "$EST/partner-a/simpleenroll")"
      cat "$W/e2.out"
      if grep -q BEGIN "$W/e2.out" || [ "$(head -c 1 "$W/e2.out")" = "M" ]; then
        base64 -d < "$W/e2.out" | openssl pkcs7 -inform DER -print_certs | openssl x509 -noout -subject
      fi
    )SH";
    auto strict = sh(script);
    ASSERT_OK(strict);
    EXPECT_NE(strict.out.find("status=400"), std::string::npos) << strict.out;
    EXPECT_NE(strict.out.find("Invalid or corrupted pkcs10 request"), std::string::npos)
        << strict.out;
    sandbox_->set_mode("est_base64=lenient");
    auto lenient = sh(script);
    ASSERT_OK(lenient);
    EXPECT_NE(lenient.out.find("status=200"), std::string::npos) << lenient.out;
    EXPECT_NE(lenient.out.find("CN = enroll-2"), std::string::npos) << lenient.out;
}

TEST_F(SandboxTest, EstRejectsMissingOrWrongCredentialsAndBadCsrs) {
    auto r = sh(R"SH(
      make_csr e3 "/CN=enroll-3"
      code() { curl -sS -o "$W/out" -D "$W/hdr" -w '%{http_code}' --cacert "$CA" "$@"; }
      p10=(-H 'Content-Type: application/pkcs10')
      echo "none=$(code "${p10[@]}" --data-binary @"$W/e3.csr.b64" "$EST/simpleenroll")"
      tr -d '\r' < "$W/hdr" | grep -i '^www-authenticate: basic'
      echo "wrong=$(code -u tester:nope "${p10[@]}" --data-binary @"$W/e3.csr.b64" "$EST/simpleenroll")"
      echo "type=$(code -u "$EST_USER" -H 'Content-Type: text/plain' --data-binary @"$W/e3.csr.b64" "$EST/simpleenroll")"
      echo "garbage=$(code -u "$EST_USER" "${p10[@]}" --data-binary 'not base64!' "$EST/simpleenroll")"
      # Same-length edit of the signed subject: the signature no longer verifies.
      LC_ALL=C sed 's/enroll-3/enroll-4/' "$W/e3.csr.der" > "$W/e3.bad.der"
      openssl req -inform DER -in "$W/e3.bad.der" -noout -subject
      base64 < "$W/e3.bad.der" > "$W/e3.bad.b64"
      echo "badsig=$(code -u "$EST_USER" "${p10[@]}" --data-binary @"$W/e3.bad.b64" "$EST/simpleenroll")"
      cat "$W/out"
      echo "get=$(code "$EST/simpleenroll")"
    )SH");
    ASSERT_OK(r);
    EXPECT_NE(r.out.find("none=401"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("wrong=401"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("type=415"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("garbage=400"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("CN = enroll-4"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("badsig=400"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("signature"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("get=405"), std::string::npos) << r.out;
}

// Digest per RFC 7616 (checked with curl's own Digest): a Digest-only simpleenroll offers
// SHA-256 and MD5 challenges and refuses Basic; reenroll_auth asks for HTTP auth on top of
// the client certificate.
TEST_F(SandboxTest, EstDigestOnlyAndReenrollAuth) {
    sandbox_->set_mode("enroll_auth=digest&reenroll_auth=basic");
    auto r = sh(R"SH(
      make_csr dg "/CN=digest-1"
      code() { curl -sS -o "$W/out" -D "$W/hdr" -w '%{http_code}' --cacert "$CA" \
                    -H 'Content-Type: application/pkcs10' "$@"; }
      echo "basic=$(code -u "$EST_USER" --data-binary @"$W/dg.csr.b64" "$EST/simpleenroll")"
      tr -d '\r' < "$W/hdr" | grep -i '^www-authenticate:' | sort
      echo "digest=$(code --digest -u "$EST_USER" --data-binary @"$W/dg.csr.b64" "$EST/simpleenroll")"
      echo "digest_wrong=$(code --digest -u tester:nope --data-binary @"$W/dg.csr.b64" "$EST/simpleenroll")"
      make_csr rb "/O=Partner/OU=payments/CN=host-1"
      echo "cert_only=$(code --cert "$W/host-1.pem" --key "$W/host-1.key" --data-binary @"$W/rb.csr.b64" "$EST/simplereenroll")"
      echo "cert_basic=$(code --cert "$W/host-1.pem" --key "$W/host-1.key" -u "$EST_USER" --data-binary @"$W/rb.csr.b64" "$EST/simplereenroll")"
    )SH");
    ASSERT_OK(r);
    EXPECT_NE(r.out.find("basic=401"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("algorithm=SHA-256"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("algorithm=MD5"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("qop=\"auth\""), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("digest=200"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("digest_wrong=401"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("cert_only=401"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("cert_basic=200"), std::string::npos) << r.out;
}

// One-line unpadded responses, the CGI Status field, a 202 ended by closing.
TEST_F(SandboxTest, EstWireModes) {
    sandbox_->set_mode("est_response_base64=oneline&est_status_field=1&est_202=close&est_retry=1");
    auto r = sh(R"SH(
      curl -sS --fail -D "$W/c.h" --cacert "$CA" "$EST/cacerts" -o "$W/c.b64"
      echo "newlines=$(tr -cd '\n' < "$W/c.b64" | wc -c) pads=$(tr -cd '=' < "$W/c.b64" | wc -c)"
      tr -d '\r' < "$W/c.h" | grep -i '^status:'
      make_csr w1 "/CN=wire-1"
      curl -sS -D "$W/a.h" -o "$W/a.out" -w 'accepted=%{http_code}\n' --cacert "$CA" -u "$EST_USER" \
           -H 'Content-Type: application/pkcs10' --data-binary @"$W/w1.csr.b64" "$EST/simpleenroll"
      tr -d '\r' < "$W/a.h" | grep -ic '^content-length:' || true
      tr -d '\r' < "$W/a.h" | grep -i '^connection:'
      cat "$W/a.out"
    )SH");
    ASSERT_OK(r);
    EXPECT_NE(r.out.find("newlines=0 pads=0"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("Status: 200 OK"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("accepted=202"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("\n0\n"), std::string::npos) << "no Content-Length expected:\n" << r.out;
    EXPECT_NE(r.out.find("Connection: close"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("request pending, retry later"), std::string::npos) << r.out;
}

TEST_F(SandboxTest, EstSimplereenrollKeepsSubjectAndNeedsTheCurrentCert) {
    auto r = sh(R"SH(
      make_csr re "/O=Partner/OU=payments/CN=host-1"
      curl -sS --fail --cacert "$CA" --cert "$W/host-1.pem" --key "$W/host-1.key" \
           -H 'Content-Type: application/pkcs10' --data-binary @"$W/re.csr.b64" \
           "$EST/simplereenroll" | base64 -d | openssl pkcs7 -inform DER -print_certs \
        | openssl x509 -out "$W/re.pem"
      echo "old_subject=$(openssl x509 -in "$W/host-1.pem" -noout -subject)"
      echo "new_subject=$(openssl x509 -in "$W/re.pem" -noout -subject)"
      echo "old_serial=$(openssl x509 -in "$W/host-1.pem" -noout -serial)"
      echo "new_serial=$(openssl x509 -in "$W/re.pem" -noout -serial)"
      openssl x509 -in "$W/re.pem" -noout -ext subjectAltName
      code() { curl -sS -o "$W/out" -w '%{http_code}' --cacert "$CA" -H 'Content-Type: application/pkcs10' "$@"; }
      echo "nocert=$(code --data-binary @"$W/re.csr.b64" "$EST/simplereenroll")"
      echo "basic=$(code -u "$EST_USER" --data-binary @"$W/re.csr.b64" "$EST/simplereenroll")"
      echo "selfsigned=$(code --cert "$W/self1.pem" --key "$W/self1.key" --data-binary @"$W/re.csr.b64" "$EST/simplereenroll")"
      make_csr other "/CN=someone-else"
      echo "othersubject=$(code --cert "$W/host-1.pem" --key "$W/host-1.key" --data-binary @"$W/other.csr.b64" "$EST/simplereenroll")"
    )SH");
    ASSERT_OK(r);
    auto field = [&](const std::string& name) {
        auto p = r.out.find(name + "=");
        if (p == std::string::npos) return std::string{};
        p += name.size() + 1;
        return r.out.substr(p, r.out.find('\n', p) - p);
    };
    EXPECT_NE(field("old_subject").find("CN = host-1"), std::string::npos) << r.out;
    EXPECT_EQ(field("old_subject"), field("new_subject"));
    EXPECT_NE(field("old_serial"), field("new_serial"));
    EXPECT_NE(r.out.find("DNS:host-1.example"), std::string::npos) << r.out;  // SANs kept
    EXPECT_EQ(field("nocert"), "403");
    EXPECT_EQ(field("basic"), "403");
    EXPECT_EQ(field("selfsigned"), "403");
    EXPECT_EQ(field("othersubject"), "400");
    EXPECT_GE(sandbox_->stats()["est_reenrolls"].get<int>(), 1);
}

TEST_F(SandboxTest, EstRetryAfterThenIssues) {
    sandbox_->set_mode("est_retry=2&retry_after=7");
    auto r = sh(R"SH(
      make_csr rt "/CN=retry-1"
      for i in 1 2 3; do
        code=$(curl -sS -D "$W/rt.h" -o "$W/rt.out" -w '%{http_code}' --cacert "$CA" -u "$EST_USER" \
               -H 'Content-Type: application/pkcs10' --data-binary @"$W/rt.csr.b64" "$EST/simpleenroll")
        retry=$(tr -d '\r' < "$W/rt.h" | { grep -i '^retry-after:' || true; } | awk '{print $2}')
        echo "try$i=$code retry=$retry"
      done
      base64 -d < "$W/rt.out" | openssl pkcs7 -inform DER -print_certs | openssl x509 -noout -subject
    )SH");
    ASSERT_OK(r);
    EXPECT_NE(r.out.find("try1=202 retry=7"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("try2=202 retry=7"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("try3=200 retry=\n"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("CN = retry-1"), std::string::npos) << r.out;
}

TEST_F(SandboxTest, EstFaultModesRejectEverythingThenRecover) {
    for (const char* status : {"401", "403", "500"}) {
        sandbox_->set_mode(std::string("est=") + status);
        auto r = sh(R"SH(
          curl -sS -o /dev/null -w '%{http_code} ' --cacert "$CA" "$EST/cacerts"
          make_csr f "/CN=fault"
          curl -sS -o /dev/null -w '%{http_code}' --cacert "$CA" -u "$EST_USER" \
               -H 'Content-Type: application/pkcs10' --data-binary @"$W/f.csr.b64" "$EST/simpleenroll"
        )SH");
        ASSERT_OK(r);
        EXPECT_EQ(r.out, std::string(status) + " " + status);
    }
    sandbox_->set_mode("est=normal");
    auto r = sh(R"SH(curl -sS -o /dev/null -w '%{http_code}' --cacert "$CA" "$EST/cacerts")SH");
    EXPECT_EQ(r.out, "200");
}

// est_variant: a (re)enroll that passes every check is answered 200 with a broken body.
TEST_F(SandboxTest, EstVariantsAnswerEnrollWithBrokenResults) {
    constexpr const char* kEnrollVariant = R"SH(
      make_csr v "/CN=variant"
      curl -sS --fail -o "$W/v.p7.b64" --cacert "$CA" -u "$EST_USER" \
           -H 'Content-Type: application/pkcs10' --data-binary @"$W/v.csr.b64" "$EST/simpleenroll"
      echo "size=$(stat -c %s "$W/v.p7.b64")"
      base64 -d < "$W/v.p7.b64" > "$W/v.p7.der"
      if openssl pkcs7 -inform DER -in "$W/v.p7.der" -print_certs -out "$W/v.pem" 2>/dev/null; then
        echo "pkcs7=ok"
        openssl x509 -in "$W/v.pem" -noout -pubkey > "$W/v.certpub"
        openssl pkey -in "$W/v.key" -pubout > "$W/v.keypub"
        cmp -s "$W/v.certpub" "$W/v.keypub" && echo "key=ours" || echo "key=other"
        openssl x509 -in "$W/v.pem" -noout -checkend 0 >/dev/null && echo "expired=no" || echo "expired=yes"
        openssl verify -CAfile "$CA" "$W/v.pem" 2>&1 || true
      else
        echo "pkcs7=unparsable"
      fi
    )SH";
    auto run = [&](const std::string& variant) {
        sandbox_->set_mode("est_variant=" + variant);
        auto r = sh(kEnrollVariant);
        EXPECT_OK(r);
        return r.out;
    };
    auto has = [](const std::string& out, const std::string& what) {
        return out.find(what) != std::string::npos;
    };
    auto normal = run("normal");
    EXPECT_TRUE(has(normal, "pkcs7=ok") && has(normal, "key=ours") && has(normal, "expired=no"))
        << normal;
    EXPECT_TRUE(has(normal, ": OK")) << normal;
    auto garbage = run("garbage");
    EXPECT_TRUE(has(garbage, "pkcs7=unparsable")) << garbage;
    auto truncated = run("truncated");
    EXPECT_TRUE(has(truncated, "pkcs7=unparsable")) << truncated;
    EXPECT_GT(truncated.size(), 0u);
    auto other = run("other-key");
    EXPECT_TRUE(has(other, "pkcs7=ok") && has(other, "key=other")) << other;
    EXPECT_TRUE(has(other, ": OK")) << "a good certificate, for another key: " << other;
    auto expired = run("expired");
    EXPECT_TRUE(has(expired, "key=ours") && has(expired, "expired=yes")) << expired;
    EXPECT_TRUE(has(expired, "certificate has expired")) << expired;
    auto future = run("not-yet-valid");
    EXPECT_TRUE(has(future, "key=ours") && has(future, "expired=no")) << future;
    EXPECT_TRUE(has(future, "certificate is not yet valid")) << future;
    auto huge = run("huge");
    auto at = huge.find("size=");
    ASSERT_NE(at, std::string::npos) << huge;
    EXPECT_GE(std::stoul(huge.substr(at + 5)), 4000000u) << huge;
    // An unknown variant is refused; normal answers are back after "normal".
    EXPECT_ANY_THROW(sandbox_->set_mode("est_variant=bogus"));
    EXPECT_TRUE(has(run("normal"), "key=ours"));
}

TEST_F(SandboxTest, EstProofOfPossessionWithTlsExporter) {
    sandbox_->set_mode("est_pop=tls-exporter");
    // One TLS connection: read the RFC 9266 exporter that openssl s_client prints, put its
    // base64 in the CSR's challengePassword, then send the request on the same connection.
    auto r = sh(R"SH(
      pop_enroll() {  # pop_enroll NAME right|wrong
        local name=$1 mangle=$2
        local fifo="$W/$name.in" out="$W/$name.sc"
        rm -f "$fifo"; mkfifo "$fifo"
        stdbuf -oL openssl s_client -connect "127.0.0.1:$EST_PORT" -CAfile "$CA" -tls1_3 -ign_eof \
          -keymatexport EXPORTER-Channel-Binding -keymatexportlen 32 < "$fifo" > "$out" 2>/dev/null &
        local pid=$!
        exec 7> "$fifo"
        for _ in $(seq 1 1000); do grep -q 'Keying material:' "$out" && break; sleep 0.01; done
        grep -q 'Keying material:' "$out" || { echo "no exporter from s_client:"; cat "$out"; return 1; }
        local hex
        hex=$(grep 'Keying material:' "$out" | awk '{print $3}')
        local pw
        pw=$(echo -n "$hex" | xxd -r -p | base64 -w0)
        if [ "$mangle" = wrong ]; then pw=$(head -c 32 /dev/zero | base64 -w0); fi
        make_csr "$name" "/CN=$name" "" "$pw"
        local body auth
        body="$(base64 -w 64 < "$W/$name.csr.der")"$'\n'  # MIME lines (RFC 7030 §4.2.1)
        auth=$(echo -n "$EST_USER" | base64 -w0)
        printf 'POST /.well-known/est/simpleenroll HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic %s\r\nContent-Type: application/pkcs10\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s' \
          "$auth" "${#body}" "$body" >&7
        exec 7>&-
        wait $pid || true
        grep -a '^HTTP/1.1' "$out" | head -1
        if grep -aq '^HTTP/1.1 200' "$out"; then
          # The body: the base64 lines after the blank line ending the header (s_client
          # may add its own lines, e.g. "closed").
          sed -n '/^\r$/,$p' "$out" | tail -n +2 | tr -d '\r' \
            | awk 'length($0) % 4 == 0 && /^[A-Za-z0-9+\/]+=*$/' | base64 -d | openssl pkcs7 -inform DER -print_certs \
            | openssl x509 -noout -subject
        fi
      }
      pop_enroll pop-good right
      pop_enroll pop-bad wrong
    )SH");
    ASSERT_OK(r);
    EXPECT_NE(r.out.find("HTTP/1.1 200"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("CN = pop-good"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("HTTP/1.1 400"), std::string::npos) << r.out;
}

// RFC 5929 tls-unique on TLS 1.2. openssl s_client cannot print the Finished message, so
// this client is a few lines of plain OpenSSL (not the agent's code).
TEST_F(SandboxTest, EstProofOfPossessionWithTlsUniqueOnTls12) {
    sandbox_->set_mode("est_pop=tls-unique");
    auto enroll_over_tls12 = [&](const std::string& name, bool use_binding) -> std::string {
        ossl::SslCtx ctx(SSL_CTX_new(TLS_client_method()));
        SSL_CTX_set_max_proto_version(ctx.get(), TLS1_2_VERSION);
        SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
        EXPECT_EQ(SSL_CTX_load_verify_locations(ctx.get(), sandbox_->ca_bundle().c_str(), nullptr),
                  1);
        struct Fd {
            int fd;
            ~Fd() { ::close(fd); }
        } sock{::socket(AF_INET, SOCK_STREAM, 0)};
        sockaddr_in sa{};
        sa.sin_family = AF_INET;
        sa.sin_port = htons(sandbox_->est_port());
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (::connect(sock.fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0)
            return "connect failed";
        ossl::Ssl ssl(SSL_new(ctx.get()));
        SSL_set_fd(ssl.get(), sock.fd);
        if (SSL_connect(ssl.get()) != 1) return "handshake failed";
        // Full handshake: the first Finished is the client's own.
        unsigned char fin[64];
        size_t n = SSL_get_finished(ssl.get(), fin, sizeof fin);
        std::string binding(reinterpret_cast<char*>(fin), n);
        if (!use_binding) binding = std::string(n, 'x');
        env_["PW"] = encoding::base64(binding);
        auto csr = sh("make_csr " + name + " /CN=" + name + " \"\" \"$PW\"; base64 -w 64 < \"$W/" +
                      name + ".csr.der\"");
        if (csr.exit_code != 0) return describe(csr);
        std::string req =
            "POST /.well-known/est/simpleenroll HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Authorization: Basic " +
            encoding::base64("tester:s3cret:pass") +
            "\r\nContent-Type: application/pkcs10\r\nContent-Length: " +
            std::to_string(csr.out.size()) + "\r\nConnection: close\r\n\r\n" + csr.out;
        if (SSL_write(ssl.get(), req.data(), static_cast<int>(req.size())) <= 0)
            return "write failed";
        std::string resp;
        char buf[4096];
        int got;
        while ((got = SSL_read(ssl.get(), buf, sizeof buf)) > 0)
            resp.append(buf, static_cast<size_t>(got));
        return resp;
    };
    auto good = enroll_over_tls12("unique-good", true);
    EXPECT_EQ(good.rfind("HTTP/1.1 200", 0), 0u) << good;
    auto bad = enroll_over_tls12("unique-bad", false);
    EXPECT_EQ(bad.rfind("HTTP/1.1 400", 0), 0u) << bad;
    EXPECT_NE(bad.find("tls-unique"), std::string::npos) << bad;
}

// ---- OAuth AS -----------------------------------------------------------------------------

TEST_F(SandboxTest, AsMetadataAdvertisesMtlsAliasesAndBoundTokens) {
    auto r =
        sh(R"SH(curl -sS --fail --cacert "$CA" "$AS/.well-known/oauth-authorization-server")SH");
    ASSERT_OK(r);
    auto m = parse(r.out);
    auto as = sandbox_->as_issuer();
    EXPECT_EQ(m["issuer"], as);
    EXPECT_EQ(m["tls_client_certificate_bound_access_tokens"], true);
    EXPECT_EQ(m["mtls_endpoint_aliases"]["token_endpoint"], as + "/mtls/token");
    EXPECT_EQ(m["mtls_endpoint_aliases"]["introspection_endpoint"], as + "/mtls/introspect");
    EXPECT_EQ(m["jwks_uri"], as + "/jwks");
    auto j = sh(R"SH(curl -sS --fail --cacert "$CA" "$AS/jwks")SH");
    auto jwks = parse(j.out);
    ASSERT_EQ(jwks["keys"].size(), 1u);
    EXPECT_EQ(jwks["keys"][0]["kty"], "EC");
    EXPECT_EQ(jwks["keys"][0]["crv"], "P-256");
    EXPECT_EQ(jwks["keys"][0]["alg"], "ES256");
}

TEST_F(SandboxTest, TokenIsAnEs256JwtBoundToTheClientCertificate) {
    auto before = sandbox_->stats()["token_requests"].get<int>();
    auto t = token("agent-dn", "host-1",
                   "-d scope=orders:read -d resource=https://api.partner.example/");
    ASSERT_TRUE(t.contains("access_token")) << t.dump();
    EXPECT_EQ(t["token_type"], "Bearer");
    EXPECT_EQ(t["expires_in"], 300);
    EXPECT_EQ(t["scope"], "orders:read");
    auto jwt = t["access_token"].get<std::string>();
    auto header = parse(*encoding::base64url_decode(jwt.substr(0, jwt.find('.'))));
    EXPECT_EQ(header["alg"], "ES256");
    auto sig = encoding::base64url_decode(jwt.substr(jwt.rfind('.') + 1));
    ASSERT_TRUE(sig);
    EXPECT_EQ(sig->size(), 64u);  // raw r||s
    auto claims = jwt_claims(jwt);
    auto x5t = sh(
        R"SH(openssl x509 -in "$W/host-1.pem" -outform DER | openssl dgst -sha256 -binary | basenc --base64url | tr -d =)SH");
    ASSERT_OK(x5t);
    EXPECT_EQ(claims["cnf"]["x5t#S256"].get<std::string>() + "\n", x5t.out);
    EXPECT_EQ(claims["client_id"], "agent-dn");
    EXPECT_EQ(claims["aud"], "https://api.partner.example/");
    EXPECT_EQ(claims["iss"], sandbox_->as_issuer());
    EXPECT_EQ(claims["exp"].get<long>() - claims["iat"].get<long>(), 300);
    EXPECT_EQ(sandbox_->stats()["token_requests"].get<int>(), before + 1);
}

TEST_F(SandboxTest, TokenSignatureVerifiesWithTheJwksKey) {
    auto t = token("agent-san", "host-1");
    auto jwt = t["access_token"].get<std::string>();
    auto j = parse(sh(R"SH(curl -sS --fail --cacert "$CA" "$AS/jwks")SH").out);
    auto x = *encoding::base64url_decode(j["keys"][0]["x"].get<std::string>());
    auto y = *encoding::base64url_decode(j["keys"][0]["y"].get<std::string>());
    auto sig = *encoding::base64url_decode(jwt.substr(jwt.rfind('.') + 1));
    // Rebuild a P-256 SPKI (fixed 26-byte prefix + 04||x||y) and a DER ECDSA signature,
    // then let openssl verify.
    std::string spki_prefix =
        *encoding::hex_decode("3059301306072a8648ce3d020106082a8648ce3d030107034200");
    auto der_int = [](std::string v) {
        while (v.size() > 1 && v[0] == 0 && !(static_cast<unsigned char>(v[1]) & 0x80))
            v.erase(0, 1);
        if (static_cast<unsigned char>(v[0]) & 0x80) v.insert(0, 1, '\0');
        return std::string("\x02", 1) + static_cast<char>(v.size()) + v;
    };
    std::string seq = der_int(sig.substr(0, 32)) + der_int(sig.substr(32));
    std::string der_sig = std::string("\x30", 1) + static_cast<char>(seq.size()) + seq;
    files::write_atomic(dir_->path() / "jwk.der", spki_prefix + "\x04" + x + y);
    files::write_atomic(dir_->path() / "jwt.sig", der_sig);
    files::write_atomic(dir_->path() / "jwt.input", jwt.substr(0, jwt.rfind('.')));
    auto r = sh(R"SH(
      openssl pkey -pubin -inform DER -in "$W/jwk.der" -out "$W/jwk.pem"
      openssl dgst -sha256 -verify "$W/jwk.pem" -signature "$W/jwt.sig" "$W/jwt.input"
    )SH");
    EXPECT_OK(r);
    EXPECT_NE(r.out.find("Verified OK"), std::string::npos) << r.out;
}

TEST_F(SandboxTest, TokenForSelfSignedClientsByThumbprintOrJwk) {
    auto a = token("self-x5t", "self1");
    ASSERT_TRUE(a.contains("access_token")) << a.dump();
    auto b = token("self-jkt", "self2");
    ASSERT_TRUE(b.contains("access_token")) << b.dump();
    auto x5t = sh(R"SH(x5t "$W/self2.pem")SH");
    EXPECT_EQ(jwt_claims(b["access_token"])["cnf"]["x5t#S256"].get<std::string>() + "\n", x5t.out);
    // self2's certificate is not self1's registration.
    auto r = sh(
        R"SH(curl -sS -w ' %{http_code}' --cacert "$CA" --cert "$W/self2.pem" --key "$W/self2.key" \
                   -d grant_type=client_credentials -d client_id=self-x5t "$AS/token")SH");
    EXPECT_NE(r.out.find("\"invalid_client\""), std::string::npos) << r.out;
    EXPECT_NE(r.out.find(" 401"), std::string::npos) << r.out;
}

TEST_F(SandboxTest, TokenEndpointErrorsFollowRfc6749) {
    struct Case {
        std::string args, error;
        int status;
    };
    const std::string cert = "--cert \"$W/host-1.pem\" --key \"$W/host-1.key\" ";
    const std::string cc = "-d grant_type=client_credentials ";
    std::vector<Case> cases = {
        {cc + "-d client_id=agent-dn", "invalid_client", 401},  // no certificate
        {cert + cc + "-d client_id=nobody", "invalid_client", 401},
        {cert + cc + "-d client_id=agent-2", "invalid_client", 401},  // other subject
        {"--cert \"$W/self1.pem\" --key \"$W/self1.key\" " + cc + "-d client_id=agent-dn",
         "invalid_client", 401},  // not from the CA
        {cert + "-d grant_type=password -d client_id=agent-dn", "unsupported_grant_type", 400},
        {cert + "-d client_id=agent-dn", "invalid_request", 400},
        {cert + cc, "invalid_request", 400},
        {cert + "-H 'Content-Type: application/json' -d '{}'", "invalid_request", 400},
        {cert + cc + "-d client_id=agent-nocc", "unauthorized_client", 400},
        {cert + cc + "-d client_id=agent-scoped -d scope=admin", "invalid_scope", 400},
        {cert + cc + "-d client_id=agent-scoped -d resource=https://elsewhere.example/",
         "invalid_target", 400},
        {cert + cc + "-d client_id=agent-dn -d resource=relative/path", "invalid_target", 400},
    };
    for (auto& c : cases) {
        auto r = sh(
            "curl -sS -D \"$W/tok.h\" -o \"$W/tok.out\" -w '%{http_code}' --cacert "
            "\"$CA\" " +
            c.args +
            R"SH( "$AS/mtls/token"; echo; cat "$W/tok.out"; echo; tr -d '\r' < "$W/tok.h" | tr A-Z a-z)SH");
        ASSERT_OK(r);
        EXPECT_EQ(std::stoi(r.out.substr(0, 3)), c.status) << c.args << "\n" << r.out;
        auto body = parse(r.out.substr(4, r.out.find('\n', 4) - 4));
        EXPECT_EQ(body["error"], c.error) << c.args << "\n" << r.out;
        EXPECT_NE(r.out.find("content-type: application/json"), std::string::npos) << r.out;
        EXPECT_NE(r.out.find("cache-control: no-store"), std::string::npos) << r.out;
    }
    // The scoped client without a scope gets its registered scopes.
    auto t = token("agent-scoped", "host-1", "-d resource=https://api.partner.example/");
    EXPECT_EQ(t["scope"], "orders:read orders:write");
}

TEST_F(SandboxTest, AsFaultModesAndRecovery) {
    auto tok = [&]() {
        return sh(R"SH(curl -sS -m 10 -o "$W/as.out" -w '%{http_code}' --cacert "$CA" \
                    --cert "$W/host-1.pem" --key "$W/host-1.key" \
                    -d grant_type=client_credentials -d client_id=agent-dn "$AS/mtls/token"
                  echo; cat "$W/as.out")SH");
    };
    sandbox_->set_mode("as=down");
    auto r = tok();
    EXPECT_EQ(r.exit_code, 7) << describe(r);  // curl: could not connect
    sandbox_->set_mode("as=normal");
    r = tok();
    ASSERT_OK(r);
    EXPECT_EQ(r.out.substr(0, 3), "200");

    sandbox_->set_mode("as=slow&delay_ms=1500");
    auto t0 = std::chrono::steady_clock::now();
    r = tok();
    EXPECT_OK(r);
    EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(1400));
    r = sh(R"SH(curl -sS -m 0.5 --cacert "$CA" --cert "$W/host-1.pem" --key "$W/host-1.key" \
                -d grant_type=client_credentials -d client_id=agent-dn "$AS/mtls/token")SH");
    EXPECT_EQ(r.exit_code, 28) << describe(r);  // timed out

    const std::vector<std::tuple<std::string, std::string, std::string>> errors = {
        {"as=400", "400", "invalid_request"},
        {"as=401", "401", "invalid_client"},
        {"as=500", "500", "server_error"},
        {"as=error&error=invalid_grant", "400", "invalid_grant"}};
    for (const auto& [mode, status, error] : errors) {
        sandbox_->set_mode(mode);
        r = tok();
        ASSERT_OK(r);
        EXPECT_EQ(r.out.substr(0, 3), status) << mode;
        EXPECT_EQ(parse(r.out.substr(4))["error"], error) << mode;
    }
    for (const char* variant :
         {"truncated", "deep", "types", "huge", "not-json", "empty", "no-token"}) {
        sandbox_->set_mode(std::string("as=hostile-json&variant=") + variant);
        r = tok();
        ASSERT_OK(r);
        EXPECT_EQ(r.out.substr(0, 3), "200") << variant;
        auto body = nlohmann::json::parse(r.out.substr(4), nullptr, false);
        bool usable = !body.is_discarded() && body.is_object() && body.contains("access_token") &&
                      body["access_token"].is_string() && body.contains("expires_in") &&
                      body["expires_in"].is_number_integer();
        EXPECT_FALSE(usable) << variant;
    }
    sandbox_->set_mode("as=normal");
    r = tok();
    EXPECT_EQ(r.out.substr(0, 3), "200");
    auto bad = sh(
        R"SH(curl -sS -o /dev/null -w '%{http_code}' --cacert "$CA" -X POST "$API/sandbox/mode?as=sideways")SH");
    EXPECT_EQ(bad.out, "400");
}

// ---- partner API --------------------------------------------------------------------------

TEST_F(SandboxTest, ApiNeedsAClientCertificateThenABoundToken) {
    auto tok = token("agent-dn", "host-1")["access_token"].get<std::string>();
    files::write_atomic(dir_->path() / "tok1", tok);
    auto r = sh(R"SH(
      get() { curl -sS -D "$W/api.h" -o "$W/api.out" -w '%{http_code}' --cacert "$CA" "$@" "$API/api/secure/data"; }
      c1=(--cert "$W/host-1.pem" --key "$W/host-1.key")
      echo "nocert=$(get) $(cat "$W/api.out")"
      echo "notoken=$(get "${c1[@]}")"
      tr -d '\r' < "$W/api.h" | grep -i '^www-authenticate: bearer'
      echo "garbage=$(get "${c1[@]}" -H 'Authorization: Bearer abc.def.ghi')"
      tr -d '\r' < "$W/api.h" | grep -i '^www-authenticate: bearer.*error="invalid_token"'
      echo "ok=$(get "${c1[@]}" -H "Authorization: Bearer $(cat "$W/tok1")")"
      cat "$W/api.out"
    )SH");
    ASSERT_OK(r);
    EXPECT_NE(r.out.find("nocert=401 {\"error\":\"Client certificate required\"}"),
              std::string::npos)
        << r.out;
    EXPECT_NE(r.out.find("notoken=401"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("garbage=401"), std::string::npos) << r.out;
    ASSERT_NE(r.out.find("ok=200"), std::string::npos) << r.out;
    auto body = parse(r.out.substr(r.out.find("ok=200") + 7));
    const auto& c = body["client_certificate"];
    EXPECT_EQ(body["client"], "host-1");
    EXPECT_EQ(c["common_name"], "host-1");
    EXPECT_EQ(c["organization"], "Partner");
    EXPECT_EQ(c["organizational_unit"], "payments");
    auto openssl = sh(R"SH(openssl x509 -in "$W/host-1.pem" -noout -serial)SH");
    EXPECT_EQ(openssl.out, "serial=" + c["serial"].get<std::string>() + "\n");
    EXPECT_FALSE(c["not_before"].get<std::string>().empty());
    EXPECT_FALSE(c["not_after"].get<std::string>().empty());
    EXPECT_EQ(body["token"]["valid"], true);
    EXPECT_EQ(body["token"]["bound_to_this_certificate"], true);
    EXPECT_EQ(body["token"]["client_id"], "agent-dn");
}

TEST_F(SandboxTest, ApiRejectsATokenPresentedWithADifferentCertificate) {
    auto tok = token("agent-dn", "host-1")["access_token"].get<std::string>();
    files::write_atomic(dir_->path() / "tok-stolen", tok);
    sh(R"SH(curl -sS --fail --cacert "$CA" -X POST "$API/sandbox/stats/reset" >/dev/null)SH");
    auto r = sh(R"SH(
      curl -sS -D "$W/mm.h" -o "$W/mm.out" -w '%{http_code}\n' --cacert "$CA" \
           --cert "$W/host-2.pem" --key "$W/host-2.key" \
           -H "Authorization: Bearer $(cat "$W/tok-stolen")" "$API/api/secure/data"
      tr -d '\r' < "$W/mm.h" | grep -i '^www-authenticate:'
      cat "$W/mm.out"
    )SH");
    ASSERT_OK(r);
    EXPECT_EQ(r.out.substr(0, 4), "401\n") << r.out;
    EXPECT_NE(r.out.find("error=\"invalid_token\""), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("different certificate"), std::string::npos) << r.out;
    auto stats = sandbox_->stats();
    EXPECT_EQ(stats["bound_mismatch"], 1);
    EXPECT_EQ(stats["bound_ok"], 0);
    // The request log says which certificate the token was bound to and which the
    // connection had.
    auto reqs = parse(sh(R"SH(curl -sS --fail --cacert "$CA" "$API/sandbox/requests")SH").out);
    ASSERT_FALSE(reqs.empty());
    const auto& last = reqs.back();
    auto x1 = sh(R"SH(x5t "$W/host-1.pem")SH").out, x2 = sh(R"SH(x5t "$W/host-2.pem")SH").out;
    EXPECT_EQ(last["token_cnf_x5t"].get<std::string>() + "\n", x1);
    EXPECT_EQ(last["conn_cert_x5t"].get<std::string>() + "\n", x2);
    EXPECT_EQ(last["bound"], false);
}

TEST_F(SandboxTest, ApiRejectsCertificatesFromOtherCasAtTheHandshake) {
    auto r = sh(
        R"SH(curl -sS -o /dev/null --cacert "$CA" --cert "$W/self1.pem" --key "$W/self1.key" "$API/api/secure/data")SH");
    EXPECT_NE(r.exit_code, 0) << describe(r);  // TLS alert: unknown CA
    EXPECT_GE(sandbox_->stats()["services"]["api"]["handshake_failures"].get<int>(), 1);
}

std::map<std::string, std::string> env_for(const TempDir& dir, const SandboxProcess& sb) {
    return {{"W", dir.path().string()}, {"CA", sb.ca_bundle()}, {"EST", sb.est_url()},
            {"AS", sb.as_issuer()},     {"API", sb.api_url()},  {"EST_USER", "u:p"}};
}

TEST(SandboxApi, AllowlistAnswers403) {
    TempDir dir("sandbox-allow");
    files::write_atomic(dir.path() / "basic", "u:p\n", 0600);
    SandboxProcess sb(dir.path(), {"--api-allow-cn", "someone-else", "--est-credentials",
                                   (dir.path() / "basic").string(), "--log-level", "warning"});
    auto r = run_shell(std::string(kEnrollFn) + R"SH(
      enroll c "/CN=not-allowed"
      curl -sS -w ' %{http_code}' --cacert "$CA" --cert "$W/c.pem" --key "$W/c.key" "$API/api/secure/data"
    )SH",
                       env_for(dir, sb));
    ASSERT_OK(r);
    EXPECT_NE(r.out.find("{\"error\":\"Certificate not authorized\"} 403"), std::string::npos)
        << r.out;
}

TEST(SandboxApi, ExpiredTokensAre401) {
    TempDir dir("sandbox-expiry");
    files::write_atomic(dir.path() / "basic", "u:p\n", 0600);
    SandboxProcess sb(dir.path(), {"--token-lifetime", "3", "--est-credentials",
                                   (dir.path() / "basic").string(), "--log-level", "warning"});
    auto r = run_shell(std::string(kEnrollFn) + R"SH(
      enroll c "/CN=short"
      c1=(--cacert "$CA" --cert "$W/c.pem" --key "$W/c.key")
      curl -sS --fail "${c1[@]}" -d grant_type=client_credentials -d client_id=any "$AS/token" \
        | sed 's/.*"access_token":"\([^"]*\)".*/\1/' > "$W/tok"
      echo "fresh=$(curl -sS -o /dev/null -w '%{http_code}' "${c1[@]}" -H "Authorization: Bearer $(cat "$W/tok")" "$API/api/secure/data")"
      # The token lives 3 s: poll (deadline 20 s) until the API stops accepting it.
      for _ in $(seq 200); do
        code="$(curl -sS -o /dev/null -w '%{http_code}' "${c1[@]}" -H "Authorization: Bearer $(cat "$W/tok")" "$API/api/secure/data")"
        [ "$code" = 401 ] && break
        sleep 0.1
      done
      curl -sS -D - -o /dev/null -w '%{http_code}\n' "${c1[@]}" -H "Authorization: Bearer $(cat "$W/tok")" "$API/api/secure/data" | tr -d '\r'
    )SH",
                       env_for(dir, sb));
    ASSERT_OK(r);
    EXPECT_NE(r.out.find("fresh=200"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("token expired"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("\n401\n"), std::string::npos) << r.out;
}

TEST(SandboxEst, SimpleenrollWithABootstrapCertificateFromAGivenCa) {
    TempDir dir("sandbox-bootstrap");
    // A manufacturer CA and a device certificate from it (made with openssl only).
    auto r = run_shell(R"SH(
      openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
        -keyout "$W/mfg.key" -out "$W/mfg.pem" -subj "/CN=manufacturer CA" \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=keyCertSign 2>/dev/null
      openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$W/dev.key" \
        -subj "/CN=device-17" -out "$W/dev.csr" 2>/dev/null
      printf 'extendedKeyUsage=clientAuth\n' > "$W/dev.ext"
      openssl x509 -req -in "$W/dev.csr" -CA "$W/mfg.pem" -CAkey "$W/mfg.key" -CAcreateserial \
        -days 1 -extfile "$W/dev.ext" -out "$W/dev.pem" 2>/dev/null
    )SH",
                       {{"W", dir.path().string()}});
    ASSERT_OK(r);
    SandboxProcess sb(dir.path(), {"--est-bootstrap-ca", (dir.path() / "mfg.pem").string(),
                                   "--log-level", "warning"});
    auto env = env_for(dir, sb);
    r = run_shell(std::string(kEnrollFn) + R"SH(
      make_csr boot "/CN=device-17"
      p10=(-H 'Content-Type: application/pkcs10' --data-binary @"$W/boot.csr.b64")
      echo "bootstrap=$(curl -sS -o "$W/boot.p7" -w '%{http_code}' --cacert "$CA" --cert "$W/dev.pem" --key "$W/dev.key" "${p10[@]}" "$EST/simpleenroll")"
      base64 -d < "$W/boot.p7" | openssl pkcs7 -inform DER -print_certs | openssl x509 -noout -subject -issuer
      echo "none=$(curl -sS -o /dev/null -w '%{http_code}' --cacert "$CA" "${p10[@]}" "$EST/simpleenroll")"
      openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
        -keyout "$W/rogue.key" -out "$W/rogue.pem" -subj "/CN=rogue" 2>/dev/null
      echo "rogue=$(curl -sS -o /dev/null -w '%{http_code}' --cacert "$CA" --cert "$W/rogue.pem" --key "$W/rogue.key" "${p10[@]}" "$EST/simpleenroll")"
    )SH",
                  env);
    ASSERT_OK(r);
    EXPECT_NE(r.out.find("bootstrap=200"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("subject=CN = device-17"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("issuer=O = mtls-agent sandbox, CN = mtls-agent sandbox issuing CA"),
              std::string::npos)
        << r.out;
    EXPECT_NE(r.out.find("none=401"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("rogue=401"), std::string::npos) << r.out;
}

TEST(SandboxOpaque, OpaqueTokensIntrospectAndWorkAtTheApi) {
    TempDir dir("sandbox-opaque");
    files::write_atomic(dir.path() / "basic", "u:p\n", 0600);
    SandboxProcess sb(dir.path(), {"--token-format", "opaque", "--est-credentials",
                                   (dir.path() / "basic").string(), "--log-level", "warning"});
    auto r = run_shell(std::string(kEnrollFn) + R"SH(
      enroll c "/CN=opaque-client"
      c1=(--cacert "$CA" --cert "$W/c.pem" --key "$W/c.key")
      tok=$(curl -sS --fail "${c1[@]}" -d grant_type=client_credentials -d client_id=op "$AS/mtls/token" \
            | sed 's/.*"access_token":"\([^"]*\)".*/\1/')
      echo "token=$tok"
      echo "introspect=$(curl -sS --fail "${c1[@]}" --data-urlencode "token=$tok" "$AS/mtls/introspect")"
      echo "bogus=$(curl -sS --fail "${c1[@]}" -d token=nope "$AS/mtls/introspect")"
      echo "nocert=$(curl -sS -o /dev/null -w '%{http_code}' --cacert "$CA" -d token=nope "$AS/mtls/introspect")"
      echo "api=$(curl -sS -o /dev/null -w '%{http_code}' "${c1[@]}" -H "Authorization: Bearer $tok" "$API/api/secure/data")"
      echo "x5t=$(x5t "$W/c.pem")"
    )SH",
                       env_for(dir, sb));
    ASSERT_OK(r);
    auto field = [&](const std::string& name) {
        auto p = r.out.find(name + "=");
        if (p == std::string::npos) return std::string{};
        p += name.size() + 1;
        return r.out.substr(p, r.out.find('\n', p) - p);
    };
    EXPECT_FALSE(field("token").empty()) << r.out;
    EXPECT_EQ(field("token").find('.'), std::string::npos);  // opaque
    auto intro = parse(field("introspect"));
    EXPECT_EQ(intro["active"], true);
    EXPECT_EQ(intro["client_id"], "op");
    EXPECT_EQ(intro["cnf"]["x5t#S256"], field("x5t"));
    EXPECT_EQ(parse(field("bogus"))["active"], false);
    EXPECT_EQ(field("nocert"), "401");
    EXPECT_EQ(field("api"), "200");
}

// ---- echo endpoints -----------------------------------------------------------------------

TEST_F(SandboxTest, EchoStatusHeadersAndSlow) {
    auto r = sh(R"SH(
      c() { curl -sS --cacert "$CA" --cert "$W/host-1.pem" --key "$W/host-1.key" "$@"; }
      echo "teapot=$(c -o /dev/null -w '%{http_code}' "$API/echo/status/418")"
      echo "nocontent=$(c -o /dev/null -w '%{http_code}' -X POST -d x=1 "$API/echo/status/204")"
      echo "headers=$(c -H 'X-Partner: 17' -H 'X-Partner: 18' "$API/echo/headers?q=1")"
      s=$(date +%s%N); c -o /dev/null "$API/echo/slow/300"; e=$(date +%s%N)
      echo "slow_ms=$(( (e - s) / 1000000 ))"
    )SH");
    ASSERT_OK(r);
    EXPECT_NE(r.out.find("teapot=418"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("nocontent=204"), std::string::npos) << r.out;
    auto p = r.out.find("headers=");
    auto h = parse(r.out.substr(p + 8, r.out.find('\n', p) - p - 8));
    EXPECT_EQ(h["method"], "GET");
    EXPECT_EQ(h["target"], "/echo/headers?q=1");
    EXPECT_EQ(h["headers"]["x-partner"], "17, 18");
    EXPECT_EQ(h["tls"]["client_certificate"]["common_name"], "host-1");
    auto ms = std::stoi(r.out.substr(r.out.find("slow_ms=") + 8));
    EXPECT_GE(ms, 290);
}

TEST_F(SandboxTest, EchoCloseFlagEndsTheConnectionAfterTheAnswer) {
    // Two URLs per curl call: curl reuses the connection unless the server closed it.
    auto r = sh(R"SH(
      c() { curl -sS --cacert "$CA" --cert "$W/host-1.pem" --key "$W/host-1.key" "$@"; }
      w='%{http_code} connects=%{num_connects} size=%{size_download}\n'
      echo "kept: $(c -w "$w" -o /dev/null "$API/echo/bytes/10" -o /dev/null "$API/echo/status/200" | tr '\n' ';')"
      echo "closed: $(c -D "$W/close.h" -w "$w" -o /dev/null "$API/echo/bytes/10?close=1" -o /dev/null "$API/echo/status/200?close=1" | tr '\n' ';')"
      echo "header: $(grep -ci '^connection: close' "$W/close.h")"
    )SH");
    ASSERT_OK(r);
    EXPECT_NE(r.out.find("kept: 200 connects=1 size=10;200 connects=0 "), std::string::npos)
        << r.out;
    EXPECT_NE(r.out.find("closed: 200 connects=1 size=10;200 connects=1 "), std::string::npos)
        << r.out;
    EXPECT_NE(r.out.find("header: 2"), std::string::npos) << r.out;
}

TEST_F(SandboxTest, EchoSinkCountsBodiesOfAnySize) {
    auto r = sh(R"SH(
      c() { curl -sS --cacert "$CA" --cert "$W/host-1.pem" --key "$W/host-1.key" "$@"; }
      echo "cl=$(head -c 50000000 /dev/zero | c --data-binary @- -H 'Content-Type: application/octet-stream' "$API/echo/sink")"
      echo "chunked=$(head -c 70001 /dev/zero | c -H 'Transfer-Encoding: chunked' --data-binary @- "$API/echo/sink")"
      echo "empty=$(c -X POST "$API/echo/sink")"
    )SH");
    ASSERT_OK(r);
    EXPECT_NE(r.out.find(R"(cl={"bytes":50000000})"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find(R"(chunked={"bytes":70001})"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find(R"(empty={"bytes":0})"), std::string::npos) << r.out;
}

TEST_F(SandboxTest, EchoStreamsLargeBodiesBothWays) {
    auto r = sh(R"SH(
      c() { curl -sS --cacert "$CA" --cert "$W/host-1.pem" --key "$W/host-1.key" "$@"; }
      # 100 MiB down, Content-Length and chunked.
      c -D "$W/b1.h" "$API/echo/bytes/104857600" | wc -c
      tr -d '\r' < "$W/b1.h" | grep -i '^content-length: 104857600$'
      c -D "$W/b2.h" "$API/echo/bytes/104857600?chunked=1" | wc -c
      tr -d '\r' < "$W/b2.h" | grep -i '^transfer-encoding: chunked$'
      # 20 MiB up and back, fixed length and chunked upload.
      head -c 20971520 /dev/urandom > "$W/up.bin"
      c --data-binary @"$W/up.bin" -H 'Content-Type: application/x-test' -D "$W/b3.h" "$API/echo/body" > "$W/down.bin"
      cmp "$W/down.bin" "$W/up.bin"
      tr -d '\r' < "$W/b3.h" | grep -i '^content-type: application/x-test$'
      c -H 'Transfer-Encoding: chunked' --data-binary @"$W/up.bin" "$API/echo/body" > "$W/down2.bin"
      cmp "$W/down2.bin" "$W/up.bin"
      rm -f "$W/up.bin" "$W/down.bin" "$W/down2.bin"
      echo streamed-ok
    )SH",
                std::chrono::seconds(120));
    ASSERT_OK(r);
    EXPECT_NE(r.out.find("104857600\n"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("streamed-ok"), std::string::npos) << r.out;
}

TEST_F(SandboxTest, EchoResetBreaksTheConnectionMidResponse) {
    auto r = sh(R"SH(curl -sS --cacert "$CA" -o "$W/reset.out" "$API/echo/reset")SH");
    EXPECT_TRUE(r.exit_code == 56 || r.exit_code == 18) << describe(r);
    // curl creates the output file only once bytes arrived; a reset before the first byte
    // leaves none, which is as valid an outcome as a truncated body.
    std::error_code ec;
    const auto got = std::filesystem::file_size(dir_->path() / "reset.out", ec);
    EXPECT_LT(ec ? 0u : got, 1048576u);
    // The sandbox is still serving.
    auto ok = sh(R"SH(curl -sS --fail -o /dev/null --cacert "$CA" "$API/echo/status/200")SH");
    EXPECT_OK(ok);
}

TEST_F(SandboxTest, CountsEveryTokenBindingAcrossEchoRequests) {
    auto t1 = token("agent-dn", "host-1")["access_token"].get<std::string>();
    auto t2 = token("agent-2", "host-2")["access_token"].get<std::string>();
    files::write_atomic(dir_->path() / "t1", t1);
    files::write_atomic(dir_->path() / "t2", t2);
    sh(R"SH(curl -sS --fail --cacert "$CA" -X POST "$API/sandbox/stats/reset" >/dev/null)SH");
    auto r = sh(R"SH(
      c1=(--cacert "$CA" --cert "$W/host-1.pem" --key "$W/host-1.key")
      for i in 1 2 3; do
        curl -sS --fail -o /dev/null "${c1[@]}" -H "Authorization: Bearer $(cat "$W/t1")" "$API/echo/headers"
      done
      curl -sS --fail -o /dev/null "${c1[@]}" -H "Authorization: Bearer $(cat "$W/t2")" "$API/echo/headers"
    )SH");
    ASSERT_OK(r);
    auto stats = sandbox_->stats();
    EXPECT_EQ(stats["bound_ok"], 3);
    EXPECT_EQ(stats["bound_mismatch"], 1);
    EXPECT_EQ(stats["echo_requests"], 4);
}

// ---- TLS session resumption ---------------------------------------------------------------

TEST_F(SandboxTest, CountsFullAndResumedHandshakes) {
    sh(R"SH(curl -sS --fail --cacert "$CA" -X POST "$API/sandbox/stats/reset" >/dev/null)SH");
    auto r = sh(R"SH(
      hp="127.0.0.1:${API##*:}"
      req='GET /echo/status/200 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'
      for v in -tls1_3 -tls1_2; do
        printf "$req" | openssl s_client $v -connect "$hp" -CAfile "$CA" -cert "$W/host-1.pem" \
            -key "$W/host-1.key" -sess_out "$W/sess$v" -ign_eof 2>&1 | grep -E '^(New|Reused),'
        printf "$req" | openssl s_client $v -connect "$hp" -CAfile "$CA" -cert "$W/host-1.pem" \
            -key "$W/host-1.key" -sess_in "$W/sess$v" -ign_eof 2>&1 | grep -E '^(New|Reused),'
      done
    )SH");
    ASSERT_OK(r);
    EXPECT_NE(r.out.find("Reused,"), std::string::npos) << r.out;
    auto api = sandbox_->stats()["services"]["api"];
    EXPECT_EQ(api["full_handshakes"], 3) << r.out;  // + the connection of this stats request
    EXPECT_EQ(api["resumed_handshakes"], 2) << r.out;
}

}  // namespace
}  // namespace mtls::test
