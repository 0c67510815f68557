#include "tests/sandbox/est_server.hpp"

#include "common/atomic_file.hpp"
#include "common/encoding.hpp"
#include "common/log.hpp"
#include "common/ossl_error.hpp"
#include "tests/sandbox/csrattrs.hpp"
#include "tests/sandbox/est_wire.hpp"
#include "tests/sandbox/pem.hpp"

#include <openssl/crypto.h>

#include <algorithm>
#include <sstream>

namespace mtls::sandbox {
namespace {

using GeneralNames = ossl::Owned<GENERAL_NAMES, &GENERAL_NAMES_free>;
void free_exts(STACK_OF(X509_EXTENSION) * s) {
    sk_X509_EXTENSION_pop_free(s, X509_EXTENSION_free);
}
using ExtStack = ossl::Owned<STACK_OF(X509_EXTENSION), &free_exts>;

std::string wrap64(const std::string& b64) {
    std::string out;
    for (size_t i = 0; i < b64.size(); i += 64) {
        out += b64.substr(i, 64);
        out += '\n';
    }
    return out;
}

std::string trim(std::string s) {
    auto sp = [](unsigned char c) { return std::isspace(c) != 0; };
    while (!s.empty() && sp(s.back())) s.pop_back();
    size_t i = 0;
    while (i < s.size() && sp(s[i])) ++i;
    return s.substr(i);
}

bool media_type_is(const std::string& header, std::string_view want) {
    auto t = header.substr(0, header.find(';'));
    t = trim(t);
    std::transform(t.begin(), t.end(), t.begin(), ::tolower);
    return t == want;
}

// The challengePassword attribute's text, or nullopt.
std::optional<std::string> challenge_password(X509_REQ* req) {
    int i = X509_REQ_get_attr_by_NID(req, NID_pkcs9_challengePassword, -1);
    if (i < 0) return std::nullopt;
    X509_ATTRIBUTE* a = X509_REQ_get_attr(req, i);
    ASN1_TYPE* t = X509_ATTRIBUTE_get0_type(a, 0);
    if (!t) return std::nullopt;
    switch (t->type) {
        case V_ASN1_PRINTABLESTRING:
        case V_ASN1_UTF8STRING:
        case V_ASN1_IA5STRING:
        case V_ASN1_T61STRING:
        case V_ASN1_BMPSTRING:
        case V_ASN1_UNIVERSALSTRING: {
            unsigned char* utf8 = nullptr;
            int n = ASN1_STRING_to_UTF8(&utf8, t->value.asn1_string);
            if (n < 0) return std::nullopt;
            std::string s(reinterpret_cast<char*>(utf8), static_cast<size_t>(n));
            OPENSSL_free(utf8);
            return s;
        }
        default:
            return std::nullopt;
    }
}

GeneralNames sans_of_request(X509_REQ* req) {
    ExtStack exts(X509_REQ_get_extensions(req));
    if (!exts) return GeneralNames(nullptr);
    return GeneralNames(static_cast<GENERAL_NAMES*>(
        X509V3_get_d2i(exts.get(), NID_subject_alt_name, nullptr, nullptr)));
}

GeneralNames sans_of_cert(X509* cert) {
    return GeneralNames(static_cast<GENERAL_NAMES*>(
        X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
}

bool constant_eq(const std::string& a, const std::string& b) {
    return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace

std::string pkcs7_certs_only_der(const std::vector<X509*>& certs) {
    ossl::Pkcs7 p7(PKCS7_new());
    if (!p7 || PKCS7_set_type(p7.get(), NID_pkcs7_signed) != 1 ||
        PKCS7_content_new(p7.get(), NID_pkcs7_data) != 1)
        throw ossl::Error("cannot build PKCS#7");
    for (X509* c : certs)
        if (PKCS7_add_certificate(p7.get(), c) != 1) throw ossl::Error("PKCS7_add_certificate");
    unsigned char* der = nullptr;
    int n = i2d_PKCS7(p7.get(), &der);
    if (n <= 0) throw ossl::Error("i2d_PKCS7 failed");
    std::string bytes(reinterpret_cast<char*>(der), static_cast<size_t>(n));
    OPENSSL_free(der);
    return bytes;
}

std::string pkcs7_certs_only_b64(const std::vector<X509*>& certs) {
    return wrap64(encoding::base64(pkcs7_certs_only_der(certs)));
}

std::vector<std::pair<std::string, std::string>> read_credentials(const std::string& path) {
    std::vector<std::pair<std::string, std::string>> out;
    std::istringstream in(files::read_all(path, 1u << 20));
    std::string line;
    while (std::getline(in, line)) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.empty() || line[0] == '#') continue;
        auto colon = line.find(':');
        if (colon == std::string::npos || colon == 0)
            throw std::runtime_error("EST credentials file " + path +
                                     ": expected lines of the form user:password");
        out.emplace_back(line.substr(0, colon), line.substr(colon + 1));
    }
    return out;
}

std::string EstServer::csrattrs_der(const std::string& spec, PopMode pop) {
    return build_csrattrs_der(spec, pop);
}

EstServer::EstServer(const DevCa& ca, const Options& options, Modes& modes, Stats& stats)
    : ca_(ca), opt_(options), modes_(modes), stats_(stats) {
    if (!opt_.est_credentials_file.empty())
        credentials_ = read_credentials(opt_.est_credentials_file);
    if (!opt_.est_bootstrap_ca.empty()) {
        bootstrap_.reset(X509_STORE_new());
        for (auto& f : opt_.est_bootstrap_ca)
            for (auto& c : certs_from_file(f)) X509_STORE_add_cert(bootstrap_.get(), c.get());
    }
    http_auth_ = std::make_unique<HttpAuthenticator>(credentials_, "est");
    (void)csrattrs_der(opt_.est_csrattrs, opt_.est_pop);  // fail at start on a bad spec
}

AuthScheme EstServer::http_auth_needed(const EstMode& mode, bool reenroll, bool cert_from_ca,
                                       bool cert_from_bootstrap) const {
    if (reenroll || cert_from_ca) return mode.reenroll_auth;
    if (cert_from_bootstrap) return AuthScheme::none;
    return mode.enroll_auth == AuthScheme::digest ? AuthScheme::digest : AuthScheme::none;
}

Task<void> EstServer::unauthorized(Exchange& ex, AuthScheme scheme, const EstMode& mode,
                                   std::string why, bool stale) {
    log::info("sandbox_est_unauthorized", {{"scheme", to_string(scheme)}, {"why", why}});
    auto res = ex.make(http::status::unauthorized);
    for (auto& c : http_auth_->challenges(scheme, mode.digest_algorithms, stale))
        res.insert(http::field::www_authenticate, c);
    res.set(http::field::content_type, "text/plain");
    res.body() = std::move(why) + "\n";
    co_await ex.send(std::move(res));
}

Task<void> EstServer::handle(Exchange& ex) {
    ++stats_.est_requests;
    std::string_view rest = ex.path();
    constexpr std::string_view kPrefix = "/.well-known/est/";
    if (!rest.starts_with(kPrefix)) {
        co_await ex.send_error(http::status::not_found, "not an EST path");
        co_return;
    }
    rest.remove_prefix(kPrefix.size());
    std::string label, op(rest);
    if (auto slash = rest.find('/'); slash != std::string_view::npos) {
        label = std::string(rest.substr(0, slash));
        op = std::string(rest.substr(slash + 1));
        bool known = opt_.est_labels.empty() ||
                     std::find(opt_.est_labels.begin(), opt_.est_labels.end(), label) !=
                         opt_.est_labels.end();
        if (!known || label.empty() || op.find('/') != std::string::npos) {
            co_await ex.send_text(http::status::not_found, "unknown EST CA label\n");
            co_return;
        }
    }
    auto mode = modes_.est();
    if (mode.status_field)
        ex.decorate = [](StringResponse& res) {
            // What a CGI/FastCGI gateway leaks: the CGI response's own Status field.
            res.set("Status", std::to_string(res.result_int()) + " " + std::string(res.reason()));
        };
    if (mode.fail_status != 0) {
        auto res = ex.make(static_cast<http::status>(mode.fail_status));
        if (mode.fail_status == 401) res.set(http::field::www_authenticate, "Basic realm=\"est\"");
        res.set(http::field::content_type, "text/plain");
        res.body() = "EST server in fault mode " + std::to_string(mode.fail_status) + "\n";
        if (op == "simpleenroll" || op == "simplereenroll") ++stats_.est_rejected;
        co_await ex.send(std::move(res));
        co_return;
    }
    auto method = ex.req().method();
    if (op == "cacerts" || op == "csrattrs") {
        if (method != http::verb::get) {
            co_await ex.send_text(http::status::method_not_allowed, "use GET\n");
            co_return;
        }
        if (op == "cacerts") {
            auto res = ex.make(http::status::ok);
            res.set(http::field::content_type, "application/pkcs7-mime");
            res.set("Content-Transfer-Encoding", "base64");
            res.body() = est_base64_body(pkcs7_certs_only_der({ca_.issuing(), ca_.root()}),
                                         mode.response_oneline);
            co_await ex.send(std::move(res));
        } else {
            // csrattrs is challenged like the enroll on the same connection would be.
            std::string why;
            const bool from_ca =
                ex.peer.cert && ca_.verify(ex.peer.cert.get(), ex.peer.chain.get(), why);
            const bool from_boot =
                !from_ca && ex.peer.cert && bootstrap_ &&
                verify_against(bootstrap_.get(), ex.peer.cert.get(), ex.peer.chain.get(), why);
            const auto need = http_auth_needed(mode, from_ca, from_ca, from_boot);
            if (need != AuthScheme::none) {
                auto out = http_auth_->verify(need, ex.header(http::field::authorization), "GET",
                                              ex.target(), mode.digest_algorithms);
                if (!out.ok) {
                    std::string text = "csrattrs: " + out.why;
                    co_await unauthorized(ex, need, mode, std::move(text), out.stale);
                    co_return;
                }
            }
            auto der = csrattrs_der(mode.csrattrs, mode.pop);
            if (der.empty()) {
                co_await ex.send(ex.make(http::status::no_content));
                co_return;
            }
            auto res = ex.make(http::status::ok);
            res.set(http::field::content_type, "application/csrattrs");
            res.set("Content-Transfer-Encoding", "base64");
            res.body() = est_base64_body(der, mode.response_oneline);
            if (mode.csrattrs_nul) res.body() += '\0';  // a C string's terminator, sent along
            co_await ex.send(std::move(res));
        }
        co_return;
    }
    if (op == "simpleenroll" || op == "simplereenroll") {
        if (method != http::verb::post) {
            co_await ex.send_text(http::status::method_not_allowed, "use POST\n");
            co_return;
        }
        co_await enroll(ex, op == "simplereenroll");
        co_return;
    }
    co_await ex.send_text(http::status::not_found, "EST operation not supported: " + op + "\n");
}

Task<void> EstServer::enroll(Exchange& ex, bool reenroll) {
    auto reject = [&](http::status st, std::string why) -> Task<void> {
        ++stats_.est_rejected;
        log::info("sandbox_est_rejected", {{"status", static_cast<int>(st)}, {"why", why}});
        auto res = ex.make(st);
        if (st == http::status::unauthorized)
            res.set(http::field::www_authenticate, "Basic realm=\"est\"");
        res.set(http::field::content_type, "text/plain");
        res.body() = std::move(why) + "\n";
        co_await ex.send(std::move(res));
    };

    // The body first, whatever the outcome: a 401 must leave the connection usable for the
    // client's authenticated retry (PoP linking needs csrattrs and the enroll on one).
    if (!media_type_is(ex.header(http::field::content_type), "application/pkcs10")) {
        co_await reject(http::status::unsupported_media_type,
                        "Content-Type must be application/pkcs10");
        co_return;
    }
    auto body = co_await ex.read_body(64 * 1024);
    if (!body) {
        co_await reject(http::status::payload_too_large, "CSR body too large");
        co_return;
    }
    const auto wire = modes_.est();

    // Authentication.
    std::string why_cert;
    bool cert_from_ca =
        ex.peer.cert && ca_.verify(ex.peer.cert.get(), ex.peer.chain.get(), why_cert);
    if (reenroll) {
        if (!ex.peer.cert) {
            co_await reject(http::status::forbidden,
                            "simplereenroll requires a TLS client certificate issued by this CA");
            co_return;
        }
        if (!cert_from_ca) {
            co_await reject(http::status::forbidden,
                            "client certificate not accepted for simplereenroll: " + why_cert);
            co_return;
        }
        if (wire.reenroll_auth != AuthScheme::none) {
            auto out = http_auth_->verify(wire.reenroll_auth, ex.header(http::field::authorization),
                                          "POST", ex.target(), wire.digest_algorithms);
            if (!out.ok) {
                ++stats_.est_rejected;
                std::string why =
                    "simplereenroll needs HTTP authentication in addition to the client "
                    "certificate: " +
                    out.why;
                co_await unauthorized(ex, wire.reenroll_auth, wire, std::move(why), out.stale);
                co_return;
            }
        }
    } else {
        bool ok = cert_from_ca;
        std::string why_boot;
        if (!ok && ex.peer.cert && bootstrap_)
            ok =
                verify_against(bootstrap_.get(), ex.peer.cert.get(), ex.peer.chain.get(), why_boot);
        if (!ok) {
            auto out = http_auth_->verify(wire.enroll_auth, ex.header(http::field::authorization),
                                          "POST", ex.target(), wire.digest_algorithms);
            if (!out.ok) {
                ++stats_.est_rejected;
                // (GCC 12: no temporaries from a conditional inside a co_await expression.)
                std::string why =
                    "simpleenroll needs HTTP Basic credentials or a bootstrap "
                    "client certificate";
                if (wire.enroll_auth == AuthScheme::digest)
                    why =
                        "simpleenroll needs HTTP Digest credentials or a bootstrap client "
                        "certificate: " +
                        out.why;
                co_await unauthorized(ex, wire.enroll_auth, wire, std::move(why), out.stale);
                co_return;
            }
        }
    }

    // The PKCS#10 request: base64 (RFC 7030 §4.2.1), decoded the way the modelled server does.
    auto der = wire.base64_lines_only ? bio_base64_decode(*body) : encoding::base64_decode(*body);
    if (!der || der->empty()) {
        std::string why = wire.base64_lines_only ? "Invalid or corrupted pkcs10 request"
                                                 : "CSR body is not base64";
        co_await reject(http::status::bad_request, std::move(why));
        co_return;
    }
    auto p = reinterpret_cast<const unsigned char*>(der->data());
    ossl::X509ReqPtr req(d2i_X509_REQ(nullptr, &p, static_cast<long>(der->size())));
    if (!req) {
        ossl::drain_errors();
        co_await reject(http::status::bad_request, "body is not a DER PKCS#10 request");
        co_return;
    }
    EVP_PKEY* pub = X509_REQ_get0_pubkey(req.get());
    if (!pub || X509_REQ_verify(req.get(), pub) != 1) {
        ossl::drain_errors();
        co_await reject(http::status::bad_request, "CSR signature does not verify");
        co_return;
    }

    // Proof of possession linking (RFC 7030 §3.5).
    auto mode = modes_.est();
    if (mode.pop != PopMode::off) {
        std::string expected;
        const char* kind = "";
        bool tls13 = !ex.peer.tls_exporter.empty();
        if (mode.pop == PopMode::tls_unique || (mode.pop == PopMode::any && !tls13)) {
            expected = ex.peer.tls_unique;
            kind = "tls-unique";
        } else {
            expected = ex.peer.tls_exporter;
            kind = "tls-exporter";
        }
        if (expected.empty()) {
            co_await reject(http::status::bad_request, std::string("proof of possession: ") + kind +
                                                           " is not available on " +
                                                           ex.peer.version);
            co_return;
        }
        auto pw = challenge_password(req.get());
        auto got = pw ? encoding::base64_decode(*pw) : std::nullopt;
        if (!got || !constant_eq(*got, expected)) {
            co_await reject(http::status::bad_request,
                            std::string("proof of possession failed: challengePassword must be "
                                        "base64 of the connection's ") +
                                kind + " value");
            co_return;
        }
    }

    // A strict profile: the CSR must hold what csrattrs asks for (key, digest, attributes,
    // extensions), as EJBCA and libest with csrattrs enforcement check.
    if (mode.enforce_csrattrs) {
        if (auto unmet = csrattrs_unmet(mode.csrattrs, mode.pop, req.get()); !unmet.empty()) {
            co_await reject(http::status::bad_request,
                            "the CSR does not satisfy the CSR attributes: " + unmet);
            co_return;
        }
    }

    // Subject and SANs.
    X509_NAME* subject = X509_REQ_get_subject_name(req.get());
    auto sans = sans_of_request(req.get());
    if (reenroll) {
        X509_NAME* current = X509_get_subject_name(ex.peer.cert.get());
        if (X509_NAME_entry_count(subject) > 0 && X509_NAME_cmp(subject, current) != 0) {
            co_await reject(http::status::bad_request,
                            "simplereenroll: CSR subject must equal the current certificate's (" +
                                subject_rfc4514(current) + ")");
            co_return;
        }
        subject = current;
        if (!sans) sans = sans_of_cert(ex.peer.cert.get());
    } else if (X509_NAME_entry_count(subject) == 0 && !sans) {
        co_await reject(http::status::bad_request, "CSR has neither a subject nor SANs");
        co_return;
    }

    if (auto retry = modes_.take_retry()) {
        ++stats_.est_retry_later;
        auto res = ex.make(http::status::accepted);
        res.set(http::field::retry_after, std::to_string(*retry));
        res.set(http::field::content_type, "text/plain");
        res.body() = "request pending, retry later\n";
        if (wire.accepted_close) {
            if (ex.decorate) ex.decorate(res);
            co_await send_close_delimited(ex, std::move(res));
        } else {
            co_await ex.send(std::move(res));
        }
        co_return;
    }

    // A broken answer on purpose (est_variant), for the clients' error paths.
    const std::string variant = modes_.est().variant;
    using std::chrono::hours;
    ossl::PKey other_key;
    if (variant == "other-key") other_key = new_p256_key();
    const auto not_before = variant == "expired"         ? -hours(2)
                            : variant == "not-yet-valid" ? hours(1)
                                                         : hours(0);
    auto cert = ca_.issue(other_key ? other_key.get() : pub, subject, sans.get(),
                          not_before == hours(0) ? opt_.cert_validity : hours(1), Usage::client,
                          not_before);
    ++(reenroll ? stats_.est_reenrolls : stats_.est_enrolls);
    log::info("sandbox_est_issued", {{"op", reenroll ? "simplereenroll" : "simpleenroll"},
                                     {"subject", subject_rfc4514(subject)},
                                     {"serial", serial_hex(cert.get())},
                                     {"validity_s", opt_.cert_validity.count()},
                                     {"variant", variant}});
    auto res = ex.make(http::status::ok);
    res.set(http::field::content_type, "application/pkcs7-mime; smime-type=certs-only");
    res.set("Content-Transfer-Encoding", "base64");
    if (variant == "garbage") {
        res.body() = wrap64(encoding::base64("garbage: this is not a PKCS#7 certs-only structure"));
    } else if (variant == "truncated") {
        auto whole = pkcs7_certs_only_der({cert.get()});
        res.body() = wrap64(encoding::base64(whole.substr(0, whole.size() / 2)));
    } else if (variant == "huge") {
        res.body() = wrap64(std::string(kHugeEstAnswerBytes / 65 * 64, 'A'));
    } else {
        res.body() = est_base64_body(pkcs7_certs_only_der({cert.get()}), wire.response_oneline);
    }
    co_await ex.send(std::move(res));
}

}  // namespace mtls::sandbox
