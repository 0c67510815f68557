// Pure parts of the token client: response and error parsing, JWT binding check, form
// encoding, metadata, and the interpretation of token endpoint answers.
#include "agent/token/errors.hpp"
#include "agent/token/jwt_binding.hpp"
#include "agent/token/metadata.hpp"
#include "agent/token/token_request.hpp"
#include "agent/token/token_response.hpp"
#include "common/encoding.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

using namespace mtls;
using namespace mtls::token;

namespace {

const std::string kX5t = encoding::base64url(encoding::sha256("certificate A"));
const std::string kOtherX5t = encoding::base64url(encoding::sha256("certificate B"));

std::string jwt(const nlohmann::json& header, const nlohmann::json& payload,
                const std::string& sig = "c2ln") {
    return encoding::base64url(header.dump()) + "." + encoding::base64url(payload.dump()) + "." +
           sig;
}

std::string bound_jwt(const std::string& x5t) {
    return jwt({{"alg", "ES256"}, {"typ", "at+jwt"}},
               {{"sub", "agent-1"}, {"cnf", {{"x5t#S256", x5t}}}});
}

TokenResponse ok(const std::string& body) {
    auto r = parse_token_response(body);
    if (auto* p = std::get_if<ResponseProblem>(&r)) ADD_FAILURE() << body << ": " << p->what;
    return std::get_if<TokenResponse>(&r) ? std::get<TokenResponse>(r) : TokenResponse{};
}

std::string problem(const std::string& body, const ResponseLimits& l = {}) {
    auto r = parse_token_response(body, l);
    if (!std::get_if<ResponseProblem>(&r)) {
        ADD_FAILURE() << "accepted: " << body.substr(0, 200);
        return {};
    }
    return std::get<ResponseProblem>(r).what;
}

}  // namespace

TEST(TokenResponse, AcceptsStandardAnswer) {
    auto r = ok(
        R"({"access_token":"abc.DEF-_~+/==","token_type":"Bearer","expires_in":3600,"scope":"a b"})");
    EXPECT_EQ(r.access_token, "abc.DEF-_~+/==");
    EXPECT_EQ(r.expires_in.count(), 3600);
    EXPECT_FALSE(r.expires_in_defaulted);
    ASSERT_TRUE(r.scope);
    EXPECT_EQ(*r.scope, "a b");
}

TEST(TokenResponse, TokenTypeCaseInsensitiveAndExpiresInString) {
    auto r = ok(R"({"access_token":"t","token_type":"bearer","expires_in":"120"})");
    EXPECT_EQ(r.expires_in.count(), 120);
    EXPECT_EQ(
        ok(R"({"access_token":"t","token_type":"BEARER","expires_in":60.0})").expires_in.count(),
        60);
}

TEST(TokenResponse, MissingExpiresInUsesDefault) {
    ResponseLimits l;
    l.default_expires_in = std::chrono::seconds(42);
    auto r = parse_token_response(R"({"access_token":"t","token_type":"Bearer"})", l);
    ASSERT_TRUE(std::holds_alternative<TokenResponse>(r));
    EXPECT_EQ(std::get<TokenResponse>(r).expires_in.count(), 42);
    EXPECT_TRUE(std::get<TokenResponse>(r).expires_in_defaulted);
}

TEST(TokenResponse, HugeExpiresInIsCappedOrRefused) {
    auto r = ok(R"({"access_token":"t","token_type":"Bearer","expires_in":2000000000})");
    EXPECT_EQ(r.expires_in.count(), 365L * 24 * 3600);
    EXPECT_TRUE(r.expires_in_capped);
    EXPECT_NE(
        problem(
            R"({"access_token":"t","token_type":"Bearer","expires_in":18446744073709551616999})")
            .find("expires_in"),
        std::string::npos);
    EXPECT_NE(problem(R"({"access_token":"t","token_type":"Bearer","expires_in":"99999999999"})")
                  .find("expires_in"),
              std::string::npos);
}

TEST(TokenResponse, RefusesHostileShapes) {
    EXPECT_EQ(problem(R"({"token_type":"Bearer","expires_in":300})"), "access_token is missing");
    EXPECT_EQ(
        problem(R"({"access_token":12345,"token_type":["Bearer"],"expires_in":"soon","scope":{}})"),
        "access_token is not a string");
    EXPECT_EQ(problem(R"({"access_token":"","token_type":"Bearer"})"), "access_token is empty");
    EXPECT_EQ(problem(R"({"access_token":"t"})"), "token_type is missing");
    EXPECT_EQ(problem(R"({"access_token":"t","token_type":["Bearer"]})"),
              "token_type is not a string");
    EXPECT_NE(problem(R"({"access_token":"t","token_type":"DPoP"})").find("only Bearer"),
              std::string::npos);
    for (const char* bad :
         {R"("0")", "0", "-5", "\"soon\"", "1.5", "true", "[]", "\"12a\"", "\"\""})
        EXPECT_NE(
            problem(std::string(R"({"access_token":"t","token_type":"Bearer","expires_in":)") +
                    bad + "}")
                .find("expires_in"),
            std::string::npos)
            << bad;
    EXPECT_EQ(problem(R"({"access_token":"t","token_type":"Bearer","scope":{}})"),
              "scope is not a string");
    EXPECT_EQ(problem(R"({"access_token":"a b","token_type":"Bearer"})"),
              "access_token has characters outside the RFC 6750 token68 set");
    EXPECT_EQ(problem(R"({"access_token":"a=b","token_type":"Bearer"})"),
              "access_token has characters outside the RFC 6750 token68 set");
    EXPECT_NE(
        problem(R"({"access_token":"t","access_token":"u","token_type":"Bearer"})").find("twice"),
        std::string::npos);
    EXPECT_EQ(problem("<html>Service Unavailable</html>"), "the answer is not valid JSON");
    EXPECT_EQ(problem(""), "the answer is not valid JSON");
    EXPECT_EQ(problem(R"({"access_token":"eyJhbGciOi","token_type":"Bearer","expires_in":3)"),
              "the answer is not valid JSON");
    EXPECT_EQ(problem("[1,2]"), "the answer is not a JSON object");
    EXPECT_NE(problem(std::string(100000, '[') + std::string(100000, ']')).find("deeper"),
              std::string::npos);
    EXPECT_NE(
        problem(R"({"a":)" + std::string(20, '[') + std::string(20, ']') + "}").find("deeper"),
        std::string::npos);
    ResponseLimits l;
    EXPECT_NE(problem(R"({"access_token":")" + std::string(l.max_access_token + 1, 'A') +
                      R"(","token_type":"Bearer"})")
                  .find("longer than"),
              std::string::npos);
}

TEST(TokenResponse, ProblemsNeverEchoTheToken) {
    const std::string secret = "SECRETTOKENVALUE";
    for (const std::string& body :
         {R"({"access_token":")" + secret + R"(","token_type":"Mac"})",
          R"({"access_token":")" + secret + R"(","token_type":"Bearer","expires_in":-1})",
          R"({"access_token":")" + secret + R"( x","token_type":"Bearer"})",
          R"({"access_token":")" + secret + R"(","token_type":"Bearer","expires_in":1)"}) {
        auto p = problem(body);
        EXPECT_EQ(p.find(secret), std::string::npos) << p;
    }
}

TEST(TokenResponse, ErrorResponse) {
    auto e = parse_error_response(
        R"({"error":"invalid_client","error_description":"bad cert\u0001\n","error_uri":"https://x"})");
    ASSERT_TRUE(e);
    EXPECT_EQ(e->error, "invalid_client");
    EXPECT_EQ(e->description, "bad cert??");
    EXPECT_EQ(e->uri, "https://x");
    EXPECT_FALSE(parse_error_response(R"({"error":5})"));
    EXPECT_FALSE(parse_error_response(R"({"error":""})"));
    EXPECT_FALSE(parse_error_response("not json"));
    EXPECT_FALSE(parse_error_response(R"({"error":"a\"b"})"));
}

TEST(JwtBinding, BoundMismatchUnboundOpaqueMalformed) {
    auto b = check_binding(bound_jwt(kX5t), kX5t);
    EXPECT_EQ(b.result, BindingCheck::Result::bound);
    b = check_binding(bound_jwt(kOtherX5t), kX5t);
    EXPECT_EQ(b.result, BindingCheck::Result::mismatch);
    EXPECT_EQ(b.token_x5t, kOtherX5t);
    EXPECT_NE(b.detail.find(kOtherX5t), std::string::npos);

    EXPECT_EQ(check_binding(jwt({{"alg", "ES256"}}, {{"sub", "x"}}), kX5t).result,
              BindingCheck::Result::unbound);
    EXPECT_EQ(check_binding(jwt({{"alg", "ES256"}}, {{"cnf", {{"jkt", "abc"}}}}), kX5t).result,
              BindingCheck::Result::unbound);

    // Opaque: no dots, two dots but not base64url JSON, JWE (five parts), padding chars.
    EXPECT_EQ(check_binding("2YotnFZFEjr1zCsicMWpAA", kX5t).result, BindingCheck::Result::opaque);
    EXPECT_EQ(check_binding("abc.def.ghi", kX5t).result, BindingCheck::Result::opaque);
    EXPECT_EQ(check_binding("a.b.c.d.e", kX5t).result, BindingCheck::Result::opaque);
    EXPECT_EQ(check_binding("eyJ+.x.y", kX5t).result, BindingCheck::Result::opaque);

    // Looks like a JWT, is not one.
    auto hdr = encoding::base64url(R"({"alg":"ES256"})");
    EXPECT_EQ(check_binding(hdr + ".%%%.sig", kX5t).result,
              BindingCheck::Result::opaque);  // not b64url
    EXPECT_EQ(check_binding(hdr + "..sig", kX5t).result, BindingCheck::Result::malformed);
    EXPECT_EQ(check_binding(hdr + "." + encoding::base64url("[1]") + ".s", kX5t).result,
              BindingCheck::Result::malformed);
    EXPECT_EQ(check_binding(encoding::base64url("{not json") + ".e30.s", kX5t).result,
              BindingCheck::Result::malformed);
    EXPECT_EQ(check_binding(encoding::base64url(R"({"typ":"JWT"})") + ".e30.s", kX5t).result,
              BindingCheck::Result::malformed);  // no alg
    EXPECT_EQ(check_binding(jwt({{"alg", "ES256"}}, {{"cnf", "x"}}), kX5t).result,
              BindingCheck::Result::malformed);
    EXPECT_EQ(check_binding(jwt({{"alg", "ES256"}}, {{"cnf", {{"x5t#S256", 7}}}}), kX5t).result,
              BindingCheck::Result::malformed);
    EXPECT_EQ(
        check_binding(jwt({{"alg", "ES256"}}, {{"cnf", {{"x5t#S256", "short"}}}}), kX5t).result,
        BindingCheck::Result::malformed);
    EXPECT_EQ(check_binding(jwt({{"alg", "ES256"}}, {{"exp", "tomorrow"}}), kX5t).result,
              BindingCheck::Result::malformed);
}

TEST(JwtBinding, ReadsExp) {
    auto b = check_binding(
        jwt({{"alg", "ES256"}}, {{"exp", 1700000000}, {"cnf", {{"x5t#S256", kX5t}}}}), kX5t);
    EXPECT_EQ(b.result, BindingCheck::Result::bound);
    ASSERT_TRUE(b.exp);
    EXPECT_EQ(*b.exp, 1700000000);
}

TEST(TokenRequest, FormEncodingAndBody) {
    EXPECT_EQ(form_encode("a b&c=d/é+*-._~"), "a%20b%26c%3Dd%2F%C3%A9%2B*-._%7E");
    config::TokenProfile p;
    p.name = "partner-a";
    p.client_id = "agent 17&x";
    p.scope = "orders:read orders:write";
    p.resources = {"https://api.a.example/", "https://api.b.example/x?y=1"};
    p.audience = "partner-a";
    EXPECT_EQ(token_request_body(p),
              "grant_type=client_credentials&client_id=agent%2017%26x"
              "&scope=orders%3Aread%20orders%3Awrite"
              "&resource=https%3A%2F%2Fapi.a.example%2F"
              "&resource=https%3A%2F%2Fapi.b.example%2Fx%3Fy%3D1&audience=partner-a");
    config::TokenProfile minimal;
    minimal.client_id = "c";
    EXPECT_EQ(token_request_body(minimal), "grant_type=client_credentials&client_id=c");
}

TEST(TokenRequest, InterpretAnswers) {
    config::TokenProfile p;
    p.name = "partner-a";
    p.client_id = "agent-17";
    ClientCertInfo cert{"CN=host-17.example,O=Example", "0A1B", kX5t};
    ResponseLimits l;

    auto r = interpret_token_answer(
        401, R"({"error":"invalid_client","error_description":"no match"})", p, cert, l);
    ASSERT_TRUE(std::holds_alternative<TokenError>(r));
    auto e = std::get<TokenError>(r);
    EXPECT_EQ(e.code, "invalid_client");
    for (const char* part :
         {"no match", "the AS does not accept certificate CN=host-17.example,O=Example",
          "serial 0A1B", "client_id agent-17"})
        EXPECT_NE(e.message.find(part), std::string::npos) << e.message;

    p.auth_method = config::TokenProfile::AuthMethod::self_signed_tls_client_auth;
    e = std::get<TokenError>(
        interpret_token_answer(400, R"({"error":"invalid_client"})", p, cert, l));
    EXPECT_NE(e.message.find(kX5t), std::string::npos) << e.message;

    e = std::get<TokenError>(
        interpret_token_answer(400, R"({"error":"invalid_scope"})", p, cert, l));
    EXPECT_EQ(e.code, "invalid_scope");
    e = std::get<TokenError>(
        interpret_token_answer(500, R"({"error":"server_error"})", p, cert, l));
    EXPECT_EQ(e.code, "as_error");
    e = std::get<TokenError>(interpret_token_answer(503, "<html>down</html>", p, cert, l));
    EXPECT_EQ(e.code, "as_error");
    EXPECT_NE(e.message.find("503"), std::string::npos);
    e = std::get<TokenError>(interpret_token_answer(302, "", p, cert, l));
    EXPECT_NE(e.message.find("redirect"), std::string::npos);

    auto good = interpret_token_answer(
        200,
        nlohmann::json{
            {"access_token", bound_jwt(kX5t)}, {"token_type", "Bearer"}, {"expires_in", 300}}
            .dump(),
        p, cert, l);
    ASSERT_TRUE(std::holds_alternative<ObtainedToken>(good));
    EXPECT_EQ(std::get<ObtainedToken>(good).binding, BindingCheck::Result::bound);
    EXPECT_EQ(std::get<ObtainedToken>(good).lifetime.count(), 300);

    const auto other = bound_jwt(kOtherX5t);
    auto bad = interpret_token_answer(
        200, nlohmann::json{{"access_token", other}, {"token_type", "Bearer"}}.dump(), p, cert, l);
    ASSERT_TRUE(std::holds_alternative<TokenError>(bad));
    EXPECT_EQ(std::get<TokenError>(bad).code, "token_not_bound");
    EXPECT_EQ(std::get<TokenError>(bad).message.find(other), std::string::npos);

    // A JWT whose exp comes before expires_in shortens the lifetime; an expired one is refused.
    auto now = std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
    auto exp =
        std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count() + 100;
    auto short_jwt = jwt({{"alg", "ES256"}}, {{"exp", exp}, {"cnf", {{"x5t#S256", kX5t}}}});
    auto s = interpret_token_answer(
        200,
        nlohmann::json{{"access_token", short_jwt}, {"token_type", "Bearer"}, {"expires_in", 3600}}
            .dump(),
        p, cert, l, now);
    ASSERT_TRUE(std::holds_alternative<ObtainedToken>(s));
    EXPECT_EQ(std::get<ObtainedToken>(s).lifetime.count(), 100);
    auto expired = jwt({{"alg", "ES256"}}, {{"exp", exp - 200}, {"cnf", {{"x5t#S256", kX5t}}}});
    auto x = interpret_token_answer(
        200, nlohmann::json{{"access_token", expired}, {"token_type", "Bearer"}}.dump(), p, cert, l,
        now);
    ASSERT_TRUE(std::holds_alternative<TokenError>(x));
    EXPECT_EQ(std::get<TokenError>(x).code, "bad_response");
}

TEST(Metadata, UrlsAndParsing) {
    auto urls = metadata_urls("https://as.example:8443");
    ASSERT_EQ(urls.size(), 2u);
    EXPECT_EQ(urls[0], "https://as.example:8443/.well-known/oauth-authorization-server");
    EXPECT_EQ(urls[1], "https://as.example:8443/.well-known/openid-configuration");
    urls = metadata_urls("https://as.example/tenant/1/");
    EXPECT_EQ(urls[0], "https://as.example/.well-known/oauth-authorization-server/tenant/1");
    EXPECT_EQ(urls[1], "https://as.example/tenant/1/.well-known/openid-configuration");
    EXPECT_TRUE(metadata_urls("http://as.example").empty());
    EXPECT_TRUE(metadata_urls("https://as.example/?q=1").empty());

    const std::string iss = "https://as.example";
    nlohmann::json doc = {
        {"issuer", iss},
        {"token_endpoint", iss + "/token"},
        {"mtls_endpoint_aliases", {{"token_endpoint", "https://mtls.as.example/token"}}},
        {"token_endpoint_auth_methods_supported", {"tls_client_auth"}},
        {"tls_client_certificate_bound_access_tokens", true}};
    auto m = parse_metadata(doc.dump(), iss);
    ASSERT_TRUE(std::holds_alternative<AsMetadata>(m));
    EXPECT_EQ(std::get<AsMetadata>(m).token_endpoint, "https://mtls.as.example/token");
    EXPECT_TRUE(std::get<AsMetadata>(m).from_mtls_alias);
    EXPECT_TRUE(std::get<AsMetadata>(m).bound_tokens);

    doc.erase("mtls_endpoint_aliases");
    m = parse_metadata(doc.dump(), iss + "/");
    ASSERT_TRUE(std::holds_alternative<AsMetadata>(m));
    EXPECT_EQ(std::get<AsMetadata>(m).token_endpoint, iss + "/token");

    auto mismatch = parse_metadata(doc.dump(), "https://evil.example");
    ASSERT_TRUE(std::holds_alternative<std::string>(mismatch));
    EXPECT_NE(std::get<std::string>(mismatch).find("not the configured issuer"), std::string::npos);

    doc["token_endpoint"] = "http://as.example/token";
    EXPECT_TRUE(std::holds_alternative<std::string>(parse_metadata(doc.dump(), iss)));
    doc["token_endpoint"] = 5;
    EXPECT_TRUE(std::holds_alternative<std::string>(parse_metadata(doc.dump(), iss)));
    doc["mtls_endpoint_aliases"] = "x";
    EXPECT_TRUE(std::holds_alternative<std::string>(parse_metadata(doc.dump(), iss)));
    EXPECT_TRUE(std::holds_alternative<std::string>(parse_metadata("[]", iss)));
}
