// Fuzz target: the sandbox's Authorization / WWW-Authenticate parser (RFC 9110 §11: a scheme
// and a token68 or auth-params) and the Basic/Digest verification on top of it. Every
// parsed header must re-serialize (params as quoted strings) to one that parses the same.
#include "tests/sandbox/http_auth.hpp"

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

std::string quote(const std::string& v) {
    std::string out = "\"";
    for (char c : v) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
    }
    return out + "\"";
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace mtls::sandbox;
    std::string_view in(reinterpret_cast<const char*>(data), size);
    static HttpAuthenticator auth({{"user", "pass"}}, "est");
    (void)auth.verify(AuthScheme::digest, in, "POST", "/.well-known/est/simplereenroll",
                      DigestAlgorithms::both);
    (void)auth.verify(AuthScheme::basic, in, "POST", "/", DigestAlgorithms::both);
    auto h = parse_auth_header(in);
    if (!h) return 0;
    std::string again = h->scheme;
    if (!h->token68.empty()) again += " " + h->token68;
    for (std::size_t i = 0; i < h->params.size(); ++i)
        again += (i ? ", " : " ") + h->params[i].first + "=" + quote(h->params[i].second);
    auto back = parse_auth_header(again);
    if (!back || back->scheme != h->scheme || back->token68 != h->token68 ||
        back->params != h->params)
        std::abort();
    return 0;
}
