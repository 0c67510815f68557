#include "tests/sandbox/http_auth.hpp"

#include "common/encoding.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cctype>
#include <stdexcept>

namespace mtls::sandbox {
namespace {

bool auth_is_tchar(char c) {
    const auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u)) return true;
    return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}
bool auth_is_ows(char c) {
    return c == ' ' || c == '\t';
}
std::string auth_lower(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}
bool auth_iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && auth_lower(a) == auth_lower(b);
}
bool auth_same(std::string_view a, std::string_view b) {
    return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string digest_hex(std::string_view algorithm, std::string_view data) {
    const EVP_MD* md = auth_iequals(algorithm, "SHA-256") ? EVP_sha256() : EVP_md5();
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (EVP_Digest(data.data(), data.size(), out, &n, md, nullptr) != 1)
        throw std::runtime_error("EVP_Digest failed");
    return encoding::hex(std::string_view(reinterpret_cast<char*>(out), n));
}

}  // namespace

bool parse_auth_scheme(const std::string& s, AuthScheme& out) {
    if (s == "none")
        out = AuthScheme::none;
    else if (s == "basic")
        out = AuthScheme::basic;
    else if (s == "digest")
        out = AuthScheme::digest;
    else
        return false;
    return true;
}

const char* to_string(AuthScheme s) {
    switch (s) {
        case AuthScheme::none:
            return "none";
        case AuthScheme::basic:
            return "basic";
        case AuthScheme::digest:
            return "digest";
    }
    return "?";
}

bool parse_digest_algorithms(const std::string& s, DigestAlgorithms& out) {
    if (s == "both")
        out = DigestAlgorithms::both;
    else if (s == "sha-256" || s == "sha256")
        out = DigestAlgorithms::sha256;
    else if (s == "md5")
        out = DigestAlgorithms::md5;
    else
        return false;
    return true;
}

const char* to_string(DigestAlgorithms a) {
    switch (a) {
        case DigestAlgorithms::both:
            return "both";
        case DigestAlgorithms::sha256:
            return "sha-256";
        case DigestAlgorithms::md5:
            return "md5";
    }
    return "?";
}

std::optional<std::string> AuthHeader::param(std::string_view name) const {
    for (const auto& [k, v] : params)
        if (k == name) return v;
    return std::nullopt;
}

std::optional<AuthHeader> parse_auth_header(std::string_view in) {
    AuthHeader out;
    std::size_t i = 0;
    while (i < in.size() && auth_is_ows(in[i])) ++i;
    const std::size_t scheme_start = i;
    while (i < in.size() && auth_is_tchar(in[i])) ++i;
    if (i == scheme_start) return std::nullopt;
    out.scheme = std::string(in.substr(scheme_start, i - scheme_start));
    if (i < in.size() && !auth_is_ows(in[i])) return std::nullopt;
    while (i < in.size() && auth_is_ows(in[i])) ++i;
    if (i == in.size()) return out;
    // token68 (Basic): 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
    {
        std::size_t j = i;
        while (j < in.size() && (std::isalnum(static_cast<unsigned char>(in[j])) ||
                                 std::string_view("-._~+/").find(in[j]) != std::string_view::npos))
            ++j;
        std::size_t k = j;
        while (k < in.size() && in[k] == '=') ++k;
        std::size_t end = k;
        while (end < in.size() && auth_is_ows(in[end])) ++end;
        // Only a token68 and blanks to the end: that is it ("name=value" goes on below).
        if (j > i && end == in.size()) {
            out.token68 = std::string(in.substr(i, k - i));
            return out;
        }
    }
    // auth-param list
    for (;;) {
        const std::size_t name_start = i;
        while (i < in.size() && auth_is_tchar(in[i])) ++i;
        if (i == name_start) return std::nullopt;
        std::string name = auth_lower(in.substr(name_start, i - name_start));
        while (i < in.size() && auth_is_ows(in[i])) ++i;
        if (i == in.size() || in[i] != '=') return std::nullopt;
        ++i;
        while (i < in.size() && auth_is_ows(in[i])) ++i;
        std::string value;
        if (i < in.size() && in[i] == '"') {
            ++i;
            bool closed = false;
            while (i < in.size()) {
                char c = in[i++];
                if (c == '"') {
                    closed = true;
                    break;
                }
                if (c == '\\') {
                    if (i == in.size()) return std::nullopt;
                    c = in[i++];
                }
                if (static_cast<unsigned char>(c) < 0x20 && c != '\t') return std::nullopt;
                value += c;
            }
            if (!closed) return std::nullopt;
        } else {
            const std::size_t v = i;
            while (i < in.size() && auth_is_tchar(in[i])) ++i;
            if (i == v) return std::nullopt;
            value = std::string(in.substr(v, i - v));
        }
        out.params.emplace_back(std::move(name), std::move(value));
        while (i < in.size() && auth_is_ows(in[i])) ++i;
        if (i == in.size()) return out;
        if (in[i] != ',') return std::nullopt;
        while (i < in.size() && (in[i] == ',' || auth_is_ows(in[i]))) ++i;
        if (i == in.size()) return out;
    }
}

HttpAuthenticator::HttpAuthenticator(std::vector<std::pair<std::string, std::string>> users,
                                     std::string realm, std::chrono::seconds nonce_lifetime)
    : users_(std::move(users)), realm_(std::move(realm)), lifetime_(nonce_lifetime) {
    opaque_ = new_nonce();
}

std::string HttpAuthenticator::new_nonce() {
    unsigned char raw[18];
    if (RAND_bytes(raw, sizeof raw) != 1) throw std::runtime_error("RAND_bytes failed");
    return encoding::base64url(std::string_view(reinterpret_cast<char*>(raw), sizeof raw));
}

std::string HttpAuthenticator::digest_response(std::string_view algorithm, std::string_view user,
                                               std::string_view realm, std::string_view password,
                                               std::string_view method, std::string_view uri,
                                               std::string_view nonce, std::string_view nc,
                                               std::string_view cnonce, std::string_view qop) {
    const std::string ha1 = digest_hex(
        algorithm, std::string(user) + ":" + std::string(realm) + ":" + std::string(password));
    const std::string ha2 = digest_hex(algorithm, std::string(method) + ":" + std::string(uri));
    return digest_hex(algorithm, ha1 + ":" + std::string(nonce) + ":" + std::string(nc) + ":" +
                                     std::string(cnonce) + ":" + std::string(qop) + ":" + ha2);
}

std::vector<std::string> HttpAuthenticator::challenges(AuthScheme scheme,
                                                       DigestAlgorithms algorithms, bool stale) {
    std::vector<std::string> out;
    if (scheme == AuthScheme::basic) {
        out.push_back("Basic realm=\"" + realm_ + "\", charset=\"UTF-8\"");
    } else if (scheme == AuthScheme::digest) {
        std::vector<const char*> algs;
        if (algorithms != DigestAlgorithms::md5) algs.push_back("SHA-256");
        if (algorithms != DigestAlgorithms::sha256) algs.push_back("MD5");
        std::lock_guard lock(mu_);
        const auto now = std::chrono::steady_clock::now();
        std::erase_if(nonces_, [&](const auto& n) { return n.second.expires < now; });
        for (const char* alg : algs) {
            std::string nonce = new_nonce();
            nonces_[nonce] = Nonce{now + lifetime_, 0};
            out.push_back("Digest realm=\"" + realm_ + "\", qop=\"auth\", algorithm=" + alg +
                          ", nonce=\"" + nonce + "\", opaque=\"" + opaque_ + "\"" +
                          (stale ? ", stale=true" : ""));
        }
    }
    return out;
}

HttpAuthenticator::Outcome HttpAuthenticator::verify(AuthScheme scheme,
                                                     std::string_view authorization,
                                                     std::string_view method,
                                                     std::string_view request_target,
                                                     DigestAlgorithms algorithms) {
    Outcome o;
    if (scheme == AuthScheme::none) {
        o.ok = true;
        return o;
    }
    const char* want = scheme == AuthScheme::basic ? "Basic" : "Digest";
    if (authorization.empty()) {
        o.why = std::string("HTTP ") + want + " authentication required";
        return o;
    }
    auto h = parse_auth_header(authorization);
    if (!h) {
        o.why = "malformed Authorization header";
        return o;
    }
    if (!auth_iequals(h->scheme, want)) {
        o.why = "Authorization scheme " + h->scheme + " refused: this server wants " + want;
        return o;
    }
    return scheme == AuthScheme::basic ? verify_basic(h->token68)
                                       : verify_digest(*h, method, request_target, algorithms);
}

HttpAuthenticator::Outcome HttpAuthenticator::verify_basic(std::string_view token68) {
    Outcome o;
    auto decoded = encoding::base64_decode(token68);
    const auto colon = decoded ? decoded->find(':') : std::string::npos;
    if (colon == std::string::npos) {
        o.why = "malformed Basic credentials";
        return o;
    }
    const auto user = decoded->substr(0, colon), pass = decoded->substr(colon + 1);
    for (const auto& [u, p] : users_)
        if (auth_same(u, user) && auth_same(p, pass)) {
            o.ok = true;
            o.user = user;
            return o;
        }
    o.why = "HTTP Basic credentials refused";
    return o;
}

HttpAuthenticator::Outcome HttpAuthenticator::verify_digest(const AuthHeader& c,
                                                            std::string_view method,
                                                            std::string_view request_target,
                                                            DigestAlgorithms algorithms) {
    Outcome o;
    auto username = c.param("username"), realm = c.param("realm"), nonce = c.param("nonce"),
         uri = c.param("uri"), response = c.param("response"), qop = c.param("qop"),
         nc = c.param("nc"), cnonce = c.param("cnonce");
    const std::string algorithm = c.param("algorithm").value_or("MD5");
    if (!username || !realm || !nonce || !uri || !response || !qop || !nc || !cnonce) {
        o.why = "Digest credentials lack username, realm, nonce, uri, response, qop, nc or cnonce";
        return o;
    }
    if (c.param("userhash").value_or("false") != "false") {
        o.why = "Digest userhash was not offered";
        return o;
    }
    const bool sha256_ok =
        algorithms != DigestAlgorithms::md5 && auth_iequals(algorithm, "SHA-256");
    const bool md5_ok = algorithms != DigestAlgorithms::sha256 && auth_iequals(algorithm, "MD5");
    if (!sha256_ok && !md5_ok) {
        o.why = "Digest algorithm " + algorithm + " was not offered";
        return o;
    }
    if (*realm != realm_ || *qop != "auth" || *uri != request_target) {
        o.why = "Digest realm, qop or uri does not match the request";
        return o;
    }
    unsigned long count = 0;
    try {
        std::size_t used = 0;
        count = std::stoul(*nc, &used, 16);
        if (used != nc->size() || nc->size() != 8) throw std::invalid_argument(*nc);
    } catch (const std::exception&) {
        o.why = "Digest nc must be 8 hex digits";
        return o;
    }
    std::string expected_for;
    {
        std::lock_guard lock(mu_);
        auto it = nonces_.find(*nonce);
        if (it == nonces_.end()) {
            o.why = "Digest nonce unknown";
            o.stale = true;  // e.g. issued before a restart: let the client retry
            return o;
        }
        if (it->second.expires < std::chrono::steady_clock::now()) {
            nonces_.erase(it);
            o.why = "Digest nonce expired";
            o.stale = true;
            return o;
        }
        if (count <= it->second.last_nc) {
            o.why = "Digest nonce count replayed";
            return o;
        }
    }
    for (const auto& [u, p] : users_) {
        if (!auth_same(u, *username)) continue;
        const auto want =
            digest_response(algorithm, u, realm_, p, method, *uri, *nonce, *nc, *cnonce, *qop);
        if (auth_same(want, auth_lower(*response))) {
            std::lock_guard lock(mu_);
            if (auto it = nonces_.find(*nonce); it != nonces_.end())
                it->second.last_nc = std::max(it->second.last_nc, count);
            o.ok = true;
            o.user = u;
            return o;
        }
    }
    o.why = "HTTP Digest credentials refused";
    return o;
}

}  // namespace mtls::sandbox
