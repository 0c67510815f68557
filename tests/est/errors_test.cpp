// The messages of failed EST requests: a 400 names what we sent and quotes the server, a 401
// names the scheme the server asked for, whether a certificate was presented and whether
// credentials were configured, offered and refused.
#include <gtest/gtest.h>

#include "est/errors.hpp"

namespace mtls::est {
namespace {

http::Response answer(long status, std::string body, std::vector<http::Header> headers = {}) {
    http::Response r;
    r.status = status;
    r.body = std::move(body);
    r.headers = std::move(headers);
    return r;
}

void expect_has(const std::string& text, std::initializer_list<const char*> parts) {
    for (const char* p : parts)
        EXPECT_NE(text.find(p), std::string::npos) << "want \"" << p << "\" in:\n" << text;
}

TEST(EstErrors, BadRequestNamesWhatWeSentNotTheConfigByDefault) {
    RequestContext c;
    c.operation = "simplereenroll";
    c.key = "EC/256";
    c.digest = "SHA256";
    c.subject = "CN=host-17.example";
    c.pop = "tls-unique";
    auto e = status_error(c, answer(400, "Invalid or corrupted pkcs10 request\n"));
    EXPECT_EQ(e.status(), 400);
    EXPECT_FALSE(e.retryable());
    const std::string m = e.what();
    expect_has(m, {"EST simplereenroll failed: server said 400",
                   "(\"Invalid or corrupted pkcs10 request\")", "EC/256", "SHA256",
                   "CN=host-17.example", "proof-of-possession (tls-unique)"});
    EXPECT_EQ(m.find("check the CSR contents"), std::string::npos) << m;
}

TEST(EstErrors, UnauthorizedOnReenrollWithoutCredentials) {
    RequestContext c;
    c.operation = "simplereenroll";
    c.client_certificate = true;
    auto r =
        answer(401, "auth required", {{"WWW-Authenticate", "Digest realm=\"est\", qop=\"auth\""}});
    r.auth_offered = http::auth_digest;
    r.auth_offered_names = {"Digest"};
    const std::string m = status_error(c, r).what();
    expect_has(m, {"server said 401 (\"auth required\")",
                   "the server wants HTTP Digest "
                   "authentication in addition to our certificate",
                   "no credentials are configured: set est.basic_credentials"});
}

TEST(EstErrors, UnauthorizedWithCredentialsOfferedAndRefused) {
    RequestContext c;
    c.operation = "simpleenroll";
    c.credentials_configured = true;
    auto r = answer(401, "", {{"WWW-Authenticate", "Basic realm=\"est\""}});
    r.auth_offered = http::auth_basic;
    r.auth_offered_names = {"Basic"};
    r.credentials_sent = true;
    const std::string m = status_error(c, r).what();
    expect_has(m, {"HTTP Basic", "no client certificate was presented",
                   "est.basic_credentials were offered and refused"});
}

TEST(EstErrors, DigestSettingAgainstABasicOnlyServer) {
    RequestContext c;
    c.operation = "simpleenroll";
    c.credentials_configured = true;
    c.auth_setting = "digest";
    auto r = answer(401, "", {{"WWW-Authenticate", "Basic realm=\"est\""}});
    r.auth_offered = http::auth_basic;
    r.auth_offered_names = {"Basic"};
    const std::string m = status_error(c, r).what();
    expect_has(m, {"HTTP Basic", "est.auth = \"digest\"", "est.auth = \"basic\""});
}

}  // namespace
}  // namespace mtls::est
