// The token cache against the partner sandbox's OAuth AS and partner API: real mTLS on
// loopback, both client authentication methods, single flight, rotation, faults.
#include "agent/token/errors.hpp"
#include "agent/token/token_cache.hpp"
#include "common/atomic_file.hpp"
#include "common/encoding.hpp"
#include "tests/support/poll.hpp"
#include "tests/token/sandbox_fixture.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <future>
#include <thread>

using namespace mtls;
using namespace mtls::token;
using namespace mtls::token::testing;
namespace asio = net::asio;

namespace {

constexpr const char* kCn = "token-test-agent";

TokenResult run_get(TokenCache& cache, const std::string& profile, identity::IdentityPtr id) {
    asio::io_context io;
    auto fut = asio::co_spawn(io, cache.get(profile, std::move(id)), asio::use_future);
    io.run();
    return fut.get();
}

std::string token_of(const TokenResult& r) {
    if (auto* e = std::get_if<TokenError>(&r)) {
        ADD_FAILURE() << "TokenError " << e->code << ": " << e->message;
        return {};
    }
    return std::get<Token>(r).access_token;
}

TokenError error_of(const TokenResult& r) {
    if (!std::holds_alternative<TokenError>(r)) {
        ADD_FAILURE() << "expected a TokenError, got a token";
        return {};
    }
    return std::get<TokenError>(r);
}

// The x5t#S256 claim of a JWT (the sandbox issues JWTs by default).
std::string cnf_of(const std::string& jwt) {
    auto a = jwt.find('.'), b = jwt.find('.', a + 1);
    auto payload = encoding::base64url_decode(jwt.substr(a + 1, b - a - 1));
    if (!payload) return {};
    return nlohmann::json::parse(*payload)["cnf"]["x5t#S256"];
}

class TokenSandbox : public ::testing::Test {
  protected:
    static void SetUpTestSuite() {
        dir_ = new std::string(make_temp_dir());
        // The self-signed client must be registered before the AS starts: make it first.
        self_signed_ = new identity::IdentityPtr(make_identity("", "token-test-self-signed", 1));
        files::write_atomic(*dir_ + "/self-signed.pem", cert_pem(**self_signed_), 0644);
        nlohmann::json clients = {{"clients",
                                   {{{"client_id", "agent-ca"},
                                     {"token_endpoint_auth_method", "tls_client_auth"},
                                     {"tls_client_auth_subject_dn", std::string("CN=") + kCn}},
                                    {{"client_id", "agent-self"},
                                     {"token_endpoint_auth_method", "self_signed_tls_client_auth"},
                                     {"x5t#S256", (*self_signed_)->x5t_s256()}}}}};
        files::write_atomic(*dir_ + "/clients.json", clients.dump(), 0644);
        sandbox_ = new Sandbox(*dir_, {"--clients", *dir_ + "/clients.json", "--api-trust-ca",
                                       *dir_ + "/self-signed.pem"});
    }
    static void TearDownTestSuite() {
        delete sandbox_;
        sandbox_ = nullptr;
        delete self_signed_;
        if (dir_) std::filesystem::remove_all(*dir_);
        delete dir_;
    }
    void SetUp() override {
        if (!sandbox_)
            GTEST_SKIP() << "partner-sandbox not built in this tree (branch sandbox not merged)";
        sandbox_->set_mode("as=normal");
        sandbox_->reset_stats();
    }

    config::OAuth oauth() const {
        config::OAuth o;
        o.issuer = sandbox_->issuer();
        o.ca_file = sandbox_->ca_bundle();
        o.timeout = std::chrono::seconds(2);
        config::TokenProfile ca;
        ca.name = "partner";
        ca.client_id = "agent-ca";
        ca.scope = "data:read";
        ca.resources = {"https://api.partner.example/", "https://api2.partner.example/"};
        ca.audience = "partner-sandbox";
        config::TokenProfile self;
        self.name = "partner-self";
        self.client_id = "agent-self";
        self.auth_method = config::TokenProfile::AuthMethod::self_signed_tls_client_auth;
        o.profiles = {ca, self};
        return o;
    }
    static CacheSettings fast() {
        CacheSettings s;
        s.backoff_initial = std::chrono::milliseconds(100);
        s.backoff_max = std::chrono::milliseconds(400);
        return s;
    }
    identity::IdentityPtr ca_identity(std::uint64_t gen) const {
        return make_identity(sandbox_->ca_dir(), kCn, gen);
    }

    static std::string* dir_;
    static Sandbox* sandbox_;
    static identity::IdentityPtr* self_signed_;
};
std::string* TokenSandbox::dir_ = nullptr;
Sandbox* TokenSandbox::sandbox_ = nullptr;
identity::IdentityPtr* TokenSandbox::self_signed_ = nullptr;

}  // namespace

TEST_F(TokenSandbox, ThumbprintMatchesOpenssl) {
    auto id = ca_identity(1);
    auto pem_path = *dir_ + "/thumb.pem";
    files::write_atomic(pem_path, cert_pem(*id), 0644);
    std::string cmd =
        "openssl x509 -in '" + pem_path +
        "' -outform DER | openssl dgst -sha256 -binary | basenc --base64url | tr -d '=\\n'";
    FILE* p = popen(cmd.c_str(), "r");
    ASSERT_NE(p, nullptr);
    char buf[256] = {};
    size_t n = fread(buf, 1, sizeof buf - 1, p);
    ASSERT_EQ(pclose(p), 0);
    std::string expected(buf, n);
    EXPECT_EQ(expected.size(), 43u);
    EXPECT_EQ(id->x5t_s256(), expected);
    EXPECT_EQ(describe_client_cert(*id).x5t, expected);
}

TEST_F(TokenSandbox, TlsClientAuthTokenIsBoundAndAcceptedOnlyWithItsCertificate) {
    TokenCache cache(oauth(), fast());
    auto id = ca_identity(1);
    auto other = ca_identity(1);
    auto token = token_of(run_get(cache, "partner", id));
    ASSERT_FALSE(token.empty());
    EXPECT_EQ(cnf_of(token), id->x5t_s256());

    auto ok = sandbox_->call_api(*id, token);
    EXPECT_EQ(ok.status, 200) << ok.body_excerpt();
    auto body = nlohmann::json::parse(ok.body);
    EXPECT_EQ(body["token"]["bound_to_this_certificate"], true);
    EXPECT_EQ(body["token"]["scope"], "data:read");

    auto refused = sandbox_->call_api(*other, token);
    EXPECT_EQ(refused.status, 401);
    EXPECT_NE(refused.body.find("different certificate"), std::string::npos)
        << refused.body_excerpt();

    // Cached: a second get makes no request.
    EXPECT_EQ(token_of(run_get(cache, "partner", id)), token);
    EXPECT_EQ(sandbox_->token_requests(), 1u);

    auto st = cache.status_json().dump();
    EXPECT_EQ(st.find(token), std::string::npos);
    EXPECT_NE(st.find("valid_until"), std::string::npos);
}

TEST_F(TokenSandbox, SelfSignedTlsClientAuth) {
    TokenCache cache(oauth(), fast());
    auto token = token_of(run_get(cache, "partner-self", *self_signed_));
    ASSERT_FALSE(token.empty());
    EXPECT_EQ(cnf_of(token), (*self_signed_)->x5t_s256());
    auto ok = sandbox_->call_api(**self_signed_, token);
    EXPECT_EQ(ok.status, 200) << ok.body_excerpt();

    // A CA-issued certificate is not the registered self-signed one: invalid_client + hint.
    auto id = ca_identity(1);
    auto e = error_of(run_get(cache, "partner-self", id));
    EXPECT_EQ(e.code, "invalid_client");
    EXPECT_NE(e.message.find("does not accept certificate CN=" + std::string(kCn)),
              std::string::npos)
        << e.message;
    EXPECT_NE(e.message.find(id->x5t_s256()), std::string::npos) << e.message;
}

TEST_F(TokenSandbox, TwoHundredConcurrentGetsMakeOneRequest) {
    TokenCache cache(oauth(), fast());
    auto id = ca_identity(1);
    const std::string profile = "partner";
    asio::io_context io;
    std::vector<TokenResult> results(200);
    for (std::size_t i = 0; i < results.size(); ++i)
        asio::co_spawn(
            io, [&, i]() -> net::awaitable<void> { results[i] = co_await cache.get(profile, id); },
            asio::detached);
    std::thread second([&] { io.run(); });
    io.run();
    second.join();
    auto first = token_of(results[0]);
    ASSERT_FALSE(first.empty());
    for (auto& r : results) EXPECT_EQ(token_of(r), first);
    EXPECT_EQ(sandbox_->token_requests(), 1u);
    EXPECT_EQ(cache.requests_started(), 1u);
}

TEST_F(TokenSandbox, RotationGivesANewTokenAndNeverTheOldOne) {
    TokenCache cache(oauth(), fast());
    auto old_id = ca_identity(1);
    auto old_token = token_of(run_get(cache, "partner", old_id));
    ASSERT_FALSE(old_token.empty());

    auto new_id = ca_identity(2);
    cache.identity_changed(new_id);
    auto new_token = token_of(run_get(cache, "partner", new_id));
    ASSERT_FALSE(new_token.empty());
    EXPECT_NE(new_token, old_token);
    EXPECT_EQ(cnf_of(new_token), new_id->x5t_s256());
    EXPECT_EQ(sandbox_->call_api(*new_id, new_token).status, 200);
    for (int i = 0; i < 5; ++i) EXPECT_EQ(token_of(run_get(cache, "partner", new_id)), new_token);
    // The old identity gets no token any more.
    EXPECT_EQ(error_of(run_get(cache, "partner", old_id)).code, "identity_rotated");
    EXPECT_EQ(cache.status().size(), 2u);  // partner (new cert) + partner-self (empty)

    // Without identity_changed: a get() with a newer identity drops the old entry as well.
    auto third = ca_identity(3);
    auto third_token = token_of(run_get(cache, "partner", third));
    EXPECT_EQ(cnf_of(third_token), third->x5t_s256());
    EXPECT_EQ(error_of(run_get(cache, "partner", new_id)).code, "identity_rotated");
}

TEST_F(TokenSandbox, InvalidateAndFlushFetchANewToken) {
    TokenCache cache(oauth(), fast());
    auto id = ca_identity(1);
    auto t1 = token_of(run_get(cache, "partner", id));
    cache.invalidate("partner", id->x5t_s256());
    auto t2 = token_of(run_get(cache, "partner", id));
    EXPECT_NE(t1, t2);
    cache.flush();
    auto t3 = token_of(run_get(cache, "partner", id));
    EXPECT_NE(t2, t3);
    EXPECT_EQ(sandbox_->token_requests(), 3u);
}

TEST_F(TokenSandbox, UnknownProfileAndNoIdentity) {
    TokenCache cache(oauth(), fast());
    EXPECT_EQ(error_of(run_get(cache, "nope", ca_identity(1))).code, "no_profile");
    EXPECT_EQ(error_of(run_get(cache, "partner", nullptr)).code, "no_identity");
}

namespace {

// Waits (polling, deadline) until the cache answers with a token again.
std::string recover(TokenCache& cache, const identity::IdentityPtr& id) {
    TokenResult r;
    const auto got = [&] {
        r = run_get(cache, "partner", id);
        return std::holds_alternative<Token>(r);
    };
    if (test::poll_until(got, std::chrono::seconds(10), std::chrono::milliseconds(50)))
        return std::get<Token>(r).access_token;
    ADD_FAILURE() << "no recovery: " << std::get<TokenError>(r).message;
    return {};
}

}  // namespace

TEST_F(TokenSandbox, FaultsGiveClearErrorsAndRecover) {
    struct Case {
        std::string mode;
        std::string code;
        std::string in_message;
    };
    const std::vector<Case> cases = {
        {"as=down", "as_unreachable", "is the AS up"},
        {"as=slow&delay_ms=4000", "as_timeout", "check oauth.timeout"},
        {"as=400", "invalid_request", "sandbox fault mode 400"},
        {"as=401", "invalid_client", "does not accept certificate"},
        {"as=500", "as_error", "HTTP 500"},
        {"as=error&error=invalid_scope", "invalid_scope", "check scope"},
        {"as=hostile-json&variant=types", "bad_response", "access_token is not a string"},
        {"as=hostile-json&variant=huge", "bad_response", "larger than"},
        {"as=hostile-json&variant=deep", "bad_response", "larger than"},
        {"as=hostile-json&variant=truncated", "bad_response", "not valid JSON"},
        {"as=hostile-json&variant=not-json", "bad_response", "not valid JSON"},
        {"as=hostile-json&variant=no-token", "bad_response", "access_token is missing"},
        {"as=hostile-json&variant=empty", "bad_response", "not valid JSON"},
    };
    auto id = ca_identity(1);
    for (const auto& c : cases) {
        SCOPED_TRACE(c.mode);
        TokenCache cache(oauth(), fast());
        sandbox_->set_mode(c.mode);
        auto e = error_of(run_get(cache, "partner", id));
        EXPECT_EQ(e.code, c.code) << e.message;
        EXPECT_NE(e.message.find(c.in_message), std::string::npos) << e.message;
        EXPECT_NE(e.message.find("partner"), std::string::npos) << e.message;
        // Each layer adds what it knows, once: the profile is named once, "failed" said once.
        auto count = [&](const std::string& needle) {
            std::size_t n = 0;
            for (auto at = e.message.find(needle); at != std::string::npos;
                 at = e.message.find(needle, at + 1))
                ++n;
            return n;
        };
        EXPECT_EQ(count("profile partner:"), 1u) << e.message;
        EXPECT_LE(count("failed"), 1u) << e.message;
        // While backing off, callers get the last error at once, without a request.
        auto before = cache.requests_started();
        auto again = error_of(run_get(cache, "partner", id));
        EXPECT_EQ(again.code, e.code);
        EXPECT_NE(again.message.find("next attempt in"), std::string::npos) << again.message;
        EXPECT_EQ(cache.requests_started(), before);
        auto st = cache.status_json();
        EXPECT_EQ(st["profiles"][0]["last_error"]["code"], c.code) << st.dump();

        sandbox_->set_mode("as=normal");
        auto token = recover(cache, id);
        EXPECT_EQ(cnf_of(token), id->x5t_s256());
    }
}
