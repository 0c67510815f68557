// Server-side HTTP authentication for the sandbox's EST server: Basic (RFC 7617) and Digest
// (RFC 7616, qop="auth", SHA-256 and MD5, server nonces with expiry and nonce-count replay
// checks), against the same user:password list as --est-credentials. No Beast here: the
// caller puts challenges() into WWW-Authenticate fields and passes the Authorization value.
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mtls::sandbox {

enum class AuthScheme { none, basic, digest };
// Which Digest algorithms the challenges offer (one WWW-Authenticate each, SHA-256 first).
enum class DigestAlgorithms { both, sha256, md5 };

bool parse_auth_scheme(const std::string& s, AuthScheme& out);  // none|basic|digest
const char* to_string(AuthScheme s);
bool parse_digest_algorithms(const std::string& s, DigestAlgorithms& out);  // both|sha-256|md5
const char* to_string(DigestAlgorithms a);

// An Authorization / WWW-Authenticate value: the scheme and its auth-params
// (RFC 9110 §11.2 / §11.4: `token=token` or `token="quoted-string"`, comma-separated), or the
// token68 of Basic. Parameter names are lower-cased. nullopt when malformed.
struct AuthHeader {
    std::string scheme;  // as sent ("Digest")
    std::string token68;
    std::vector<std::pair<std::string, std::string>> params;
    std::optional<std::string> param(std::string_view name) const;
};
std::optional<AuthHeader> parse_auth_header(std::string_view value);

class HttpAuthenticator {
  public:
    HttpAuthenticator(std::vector<std::pair<std::string, std::string>> users, std::string realm,
                      std::chrono::seconds nonce_lifetime = std::chrono::seconds(300));

    struct Outcome {
        bool ok = false;
        std::string user;
        std::string why;     // for the 401 body and the log
        bool stale = false;  // a Digest answer to an expired nonce (challenge with stale=true)
    };
    // Checks `authorization` (the header's value, "" when absent) for `scheme`. A Basic
    // header at a Digest-only door (or the other way round) is refused.
    Outcome verify(AuthScheme scheme, std::string_view authorization, std::string_view method,
                   std::string_view request_target, DigestAlgorithms algorithms);
    // WWW-Authenticate values for a 401 (Digest: a fresh nonce per value).
    std::vector<std::string> challenges(AuthScheme scheme, DigestAlgorithms algorithms,
                                        bool stale = false);

    // RFC 7616 §3.4.1 response for the given fields (hex), algorithm "MD5" or "SHA-256".
    static std::string digest_response(std::string_view algorithm, std::string_view user,
                                       std::string_view realm, std::string_view password,
                                       std::string_view method, std::string_view uri,
                                       std::string_view nonce, std::string_view nc,
                                       std::string_view cnonce, std::string_view qop);

  private:
    Outcome verify_basic(std::string_view token68);
    Outcome verify_digest(const AuthHeader& c, std::string_view method,
                          std::string_view request_target, DigestAlgorithms algorithms);
    std::string new_nonce();

    std::vector<std::pair<std::string, std::string>> users_;
    std::string realm_;
    std::string opaque_;
    std::chrono::seconds lifetime_;
    struct Nonce {
        std::chrono::steady_clock::time_point expires;
        unsigned long last_nc = 0;
    };
    std::mutex mu_;
    std::map<std::string, Nonce> nonces_;
};

}  // namespace mtls::sandbox
