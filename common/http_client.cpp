#include "common/http_client.hpp"

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509_vfy.h>

#include <algorithm>
#include <cctype>
#include <exception>
#include <mutex>

#include "common/encoding.hpp"
#include "common/log.hpp"
#include "common/ossl_error.hpp"

namespace mtls::http {
namespace {

struct CurlEasyDeleter {
    void operator()(CURL* c) const noexcept { curl_easy_cleanup(c); }
};
using CurlEasy = std::unique_ptr<CURL, CurlEasyDeleter>;

struct CurlSlistDeleter {
    void operator()(curl_slist* s) const noexcept { curl_slist_free_all(s); }
};
using CurlSlist = std::unique_ptr<curl_slist, CurlSlistDeleter>;

struct CurlUrlDeleter {
    void operator()(CURLU* u) const noexcept { curl_url_cleanup(u); }
};
using CurlUrl = std::unique_ptr<CURLU, CurlUrlDeleter>;

struct CurlStrDeleter {
    void operator()(char* s) const noexcept { curl_free(s); }
};
using CurlStr = std::unique_ptr<char, CurlStrDeleter>;

ossl::X509Ptr up_ref(X509* x) {
    if (x) X509_up_ref(x);
    return ossl::X509Ptr(x);
}

std::string cert_subject(X509* x) {
    if (!x) return "?";
    ossl::Bio bio(BIO_new(BIO_s_mem()));
    X509_NAME_print_ex(bio.get(), X509_get_subject_name(x), 0, XN_FLAG_RFC2253);
    char* data = nullptr;
    long n = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<std::size_t>(n));
}

std::string cert_sha256(X509* x) {
    unsigned char* der = nullptr;
    int n = i2d_X509(x, &der);
    if (n <= 0) return {};
    std::string out = encoding::sha256(std::string_view(reinterpret_cast<char*>(der), n));
    OPENSSL_free(der);
    return out;
}

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
           });
}

void check(CURLcode rc, const char* what) {
    if (rc != CURLE_OK)
        throw Error(Error::Kind::invalid_request, std::string("HTTP client setup failed: ") + what +
                                                      ": " + curl_easy_strerror(rc));
}

}  // namespace

void global_init() {
    static std::once_flag once;
    static CURLcode rc = CURLE_OK;
    std::call_once(once, [] { rc = curl_global_init(CURL_GLOBAL_DEFAULT); });
    if (rc != CURLE_OK)
        throw Error(Error::Kind::invalid_request,
                    std::string("libcurl initialization failed: ") + curl_easy_strerror(rc));
}

// ---- ServerTrust / ClientIdentity ------------------------------------------------------

ServerTrust::ServerTrust(const ServerTrust& o)
    : ca_file(o.ca_file), pinned_sha256(o.pinned_sha256) {
    for (const auto& c : o.ca_certs) ca_certs.push_back(up_ref(c.get()));
}

ServerTrust& ServerTrust::operator=(const ServerTrust& o) {
    if (this != &o) {
        ServerTrust copy(o);
        *this = std::move(copy);
    }
    return *this;
}

ServerTrust ServerTrust::from_ca_file(std::string path) {
    ServerTrust t;
    t.ca_file = std::move(path);
    return t;
}

ServerTrust ServerTrust::from_certs(const std::vector<X509*>& certs) {
    ServerTrust t;
    for (X509* c : certs) t.ca_certs.push_back(up_ref(c));
    return t;
}

ServerTrust ServerTrust::from_pin(std::string sha256_raw) {
    ServerTrust t;
    t.pinned_sha256 = std::move(sha256_raw);
    return t;
}

std::shared_ptr<const ClientIdentity> ClientIdentity::make(X509* cert, STACK_OF(X509) * chain,
                                                           EVP_PKEY* key) {
    std::vector<X509*> v;
    for (int i = 0; chain && i < sk_X509_num(chain); ++i) v.push_back(sk_X509_value(chain, i));
    return make(cert, v, key);
}

std::shared_ptr<const ClientIdentity> ClientIdentity::make(X509* cert,
                                                           const std::vector<X509*>& chain,
                                                           EVP_PKEY* key) {
    if (!cert || !key)
        throw Error(Error::Kind::invalid_request, "client identity needs a certificate and a key");
    auto id = std::make_shared<ClientIdentity>();
    id->cert = up_ref(cert);
    for (X509* c : chain) id->chain.push_back(up_ref(c));
    EVP_PKEY_up_ref(key);
    id->key.reset(key);
    return id;
}

BasicAuth::~BasicAuth() {
    if (!password.empty()) OPENSSL_cleanse(password.data(), password.size());
}

// ---- Response ---------------------------------------------------------------------------

std::optional<std::string_view> Response::header(std::string_view name) const {
    for (const auto& h : headers) {
        if (h.name.size() == name.size() &&
            std::equal(h.name.begin(), h.name.end(), name.begin(), [](char a, char b) {
                return std::tolower(static_cast<unsigned char>(a)) ==
                       std::tolower(static_cast<unsigned char>(b));
            }))
            return std::string_view(h.value);
    }
    return std::nullopt;
}

std::string Response::body_excerpt(std::size_t max) const {
    std::string out;
    for (char c : body) {
        if (out.size() >= max) {
            out += "…";
            break;
        }
        unsigned char u = static_cast<unsigned char>(c);
        if (u == '\r' || u == '\n' || u == '\t')
            out += ' ';
        else
            out += (u >= 0x20 && u < 0x7f) ? c : '.';
    }
    // Collapse the trailing blanks left by line breaks.
    while (!out.empty() && out.back() == ' ') out.pop_back();
    return out;
}

// ---- Session ----------------------------------------------------------------------------

struct Session::Impl {
    Options opts;
    CurlEasy easy;
    ossl::X509StorePtr anchors;  // ca_file / ca_certs mode

    // Per request.
    std::string url;
    std::string host;  // for the name check in verify_chain
    std::string body;
    bool too_large = false;
    std::string verify_failure;    // set by verify_chain
    std::string identity_failure;  // set by ssl_ctx_setup
    std::exception_ptr hook_error;
    const ConnectedHook* hook = nullptr;
    char errbuf[CURL_ERROR_SIZE] = {};

    static size_t on_write(char* ptr, size_t size, size_t n, void* user) {
        auto* self = static_cast<Impl*>(user);
        const size_t len = size * n;
        if (self->body.size() + len > self->opts.max_response_bytes) {
            self->too_large = true;
            return 0;  // aborts the transfer (CURLE_WRITE_ERROR)
        }
        self->body.append(ptr, len);
        return len;
    }

    static int on_prereq(void* user, char*, char*, int, int) {
        auto* self = static_cast<Impl*>(user);
        const bool hook = self->hook && *self->hook;
        if (!hook && !self->opts.check_connection) return CURL_PREREQFUNC_OK;
        try {
            SSL* ssl = nullptr;
            curl_tlssessioninfo* info = nullptr;
            if (curl_easy_getinfo(self->easy.get(), CURLINFO_TLS_SSL_PTR, &info) == CURLE_OK &&
                info && info->backend == CURLSSLBACKEND_OPENSSL)
                ssl = static_cast<SSL*>(info->internals);
            if (self->opts.check_connection && ssl) self->opts.check_connection(ssl);
            if (hook) (*self->hook)(ssl);
        } catch (...) {
            self->hook_error = std::current_exception();
            return CURL_PREREQFUNC_ABORT;
        }
        return CURL_PREREQFUNC_OK;
    }

    // One path validation of the presented chain against `store` (purpose TLS server, the
    // host name). On success the verified chain goes into `ctx`; on failure `why` says what.
    bool validate(X509_STORE_CTX* ctx, X509_STORE* store, bool partial, const char* trusted,
                  std::string& why) const {
        X509* leaf = X509_STORE_CTX_get0_cert(ctx);
        ossl::X509StoreCtxPtr vctx(X509_STORE_CTX_new());
        if (!vctx ||
            X509_STORE_CTX_init(vctx.get(), store, leaf, X509_STORE_CTX_get0_untrusted(ctx)) != 1) {
            why = "cannot set up chain verification: " + ossl::drain_errors();
            X509_STORE_CTX_set_error(ctx, X509_V_ERR_OUT_OF_MEM);
            return false;
        }
        X509_STORE_CTX_set_purpose(vctx.get(), X509_PURPOSE_SSL_SERVER);
        X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(vctx.get());
        // The pinned certificate may be an intermediate or the server's own certificate.
        if (partial) X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_PARTIAL_CHAIN);
        if (X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str()) != 1) {
            ERR_clear_error();
            X509_VERIFY_PARAM_set1_host(param, host.c_str(), host.size());
        }
        if (X509_verify_cert(vctx.get()) == 1) {
            X509_STORE_CTX_set0_verified_chain(ctx, X509_STORE_CTX_get1_chain(vctx.get()));
            X509_STORE_CTX_set_error(ctx, X509_V_OK);
            return true;
        }
        const int err = X509_STORE_CTX_get_error(vctx.get());
        const int depth = X509_STORE_CTX_get_error_depth(vctx.get());
        X509* bad = X509_STORE_CTX_get_current_cert(vctx.get());
        why = std::string("server certificate rejected: ") + X509_verify_cert_error_string(err) +
              " (depth " + std::to_string(depth) + ", \"" + cert_subject(bad ? bad : leaf) +
              "\"; trusted: " + trusted + ")";
        ERR_clear_error();
        X509_STORE_CTX_set_error(ctx, err);
        return false;
    }

    // The presented certificate whose SHA-256 is the pin, or null (`seen` lists them all).
    X509* pinned_in(X509_STORE_CTX* ctx, std::string& seen) const {
        X509* leaf = X509_STORE_CTX_get0_cert(ctx);
        STACK_OF(X509)* presented = X509_STORE_CTX_get0_untrusted(ctx);
        X509* match = nullptr;
        auto consider = [&](X509* c) {
            if (!match && c && cert_sha256(c) == opts.trust.pinned_sha256) match = c;
            if (!seen.empty()) seen += ", ";
            seen += "\"" + cert_subject(c) + "\" sha256:" + encoding::hex(cert_sha256(c));
        };
        consider(leaf);
        for (int i = 0; presented && i < sk_X509_num(presented); ++i) {
            X509* c = sk_X509_value(presented, i);
            if (X509_cmp(c, leaf) != 0) consider(c);
        }
        return match;
    }

    // Our whole server-chain decision, installed with SSL_CTX_set_cert_verify_callback.
    // CA certificates (a file or in memory) and a pin may both be set (the EST client after
    // the first contact: the /cacerts certificates, and the pin it was configured with):
    // the chain passes when it validates against the CA certificates, or else against the
    // pinned certificate it presents.
    static int verify_chain(X509_STORE_CTX* ctx, void* arg) {
        auto* self = static_cast<Impl*>(arg);
        const auto& trust = self->opts.trust;
        const bool pinned = !trust.pinned_sha256.empty();
        std::string why;
        if (self->anchors) {
            const std::string trusted =
                trust.ca_file.empty() ? "the stored CA certificates" : trust.ca_file;
            if (self->validate(ctx, self->anchors.get(), false, trusted.c_str(), why)) return 1;
            if (!pinned) {
                self->verify_failure = why;
                return 0;
            }
        }
        std::string seen;
        X509* match = self->pinned_in(ctx, seen);
        if (!match) {
            self->verify_failure = (why.empty() ? "" : why + "; and ") +
                                   "no certificate presented by the server matches the pinned "
                                   "SHA-256 " +
                                   encoding::hex(trust.pinned_sha256) + " (presented: " + seen +
                                   ")";
            if (!why.empty())
                self->verify_failure +=
                    " — if the EST server's TLS certificate comes from another CA than the "
                    "certificates it enrolls for, set est.trust_anchor to that CA";
            X509_STORE_CTX_set_error(ctx, X509_V_ERR_APPLICATION_VERIFICATION);
            return 0;
        }
        ossl::X509StorePtr pin_store(X509_STORE_new());
        if (!pin_store || X509_STORE_add_cert(pin_store.get(), match) != 1) {
            self->verify_failure = "cannot build the pinned trust store: " + ossl::drain_errors();
            X509_STORE_CTX_set_error(ctx, X509_V_ERR_OUT_OF_MEM);
            return 0;
        }
        if (self->validate(ctx, pin_store.get(), true, "the pinned certificate", why)) return 1;
        self->verify_failure = why;
        return 0;
    }

    static CURLcode ssl_ctx_setup(CURL*, void* sslctx, void* user) {
        auto* self = static_cast<Impl*>(user);
        auto* ctx = static_cast<SSL_CTX*>(sslctx);
        SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
        if (self->opts.tls_max == TlsMax::tls1_2)
            SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
        if (self->opts.tls_max == TlsMax::tls1_3)
            SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
        SSL_CTX_set_cert_verify_callback(ctx, &Impl::verify_chain, self);
        // A connection check (revocation) can use a stapled OCSP response: ask for one.
        if (self->opts.check_connection)
            SSL_CTX_set_tlsext_status_type(ctx, TLSEXT_STATUSTYPE_ocsp);
        if (const auto& id = self->opts.identity) {
            bool ok = SSL_CTX_use_certificate(ctx, id->cert.get()) == 1;
            for (const auto& c : id->chain) ok = ok && SSL_CTX_add1_chain_cert(ctx, c.get()) == 1;
            ok = ok && SSL_CTX_use_PrivateKey(ctx, id->key.get()) == 1;
            ok = ok && SSL_CTX_check_private_key(ctx) == 1;
            if (!ok) {
                self->identity_failure = "cannot install the client certificate and key \"" +
                                         cert_subject(id->cert.get()) +
                                         "\": " + ossl::drain_errors();
                return CURLE_SSL_CERTPROBLEM;
            }
        }
        return CURLE_OK;
    }

    void reset_request() {
        body.clear();
        too_large = false;
        verify_failure.clear();
        identity_failure.clear();
        hook_error = nullptr;
        hook = nullptr;
        errbuf[0] = 0;
    }

    std::string describe(CURLcode rc, const Request& req) const {
        std::string msg = req.method + " " + url + " failed: ";
        if (!verify_failure.empty()) return msg + verify_failure;
        if (!identity_failure.empty()) return msg + identity_failure;
        if (too_large)
            return msg + "response larger than " + std::to_string(opts.max_response_bytes) +
                   " bytes";
        // libcurl's detail when it has one ("Failed to connect to … port …: Connection
        // refused"), its generic text ("Couldn't connect to server") only otherwise.
        return msg + (errbuf[0] ? std::string(errbuf) : std::string(curl_easy_strerror(rc)));
    }
};

Session::Session(Options options) : impl_(std::make_unique<Impl>()) {
    global_init();
    impl_->opts = std::move(options);
    const auto& t = impl_->opts.trust;
    if (!t.pinned_sha256.empty() && t.pinned_sha256.size() != 32)
        throw Error(Error::Kind::invalid_request,
                    "the pinned server fingerprint must be a SHA-256 (32 bytes), got " +
                        std::to_string(t.pinned_sha256.size()) + " bytes");
    if (t.pinned_sha256.empty() || !t.ca_certs.empty() || !t.ca_file.empty()) {
        impl_->anchors.reset(X509_STORE_new());
        if (!impl_->anchors) throw ossl::Error("X509_STORE_new");
        if (!t.ca_certs.empty()) {
            for (const auto& c : t.ca_certs)
                if (X509_STORE_add_cert(impl_->anchors.get(), c.get()) != 1)
                    throw ossl::Error("cannot add a CA certificate to the trust store");
        } else if (!t.ca_file.empty()) {
            if (X509_STORE_load_file(impl_->anchors.get(), t.ca_file.c_str()) != 1)
                throw Error(Error::Kind::invalid_request,
                            "cannot load the CA file " + t.ca_file + ": " + ossl::drain_errors());
        } else {
            throw Error(Error::Kind::invalid_request,
                        "no server trust configured (a CA file, CA certificates or a pinned "
                        "SHA-256 fingerprint is required)");
        }
    }

    impl_->easy.reset(curl_easy_init());
    if (!impl_->easy) throw Error(Error::Kind::invalid_request, "curl_easy_init failed");
    CURL* e = impl_->easy.get();
    const auto& o = impl_->opts;
    check(curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L), "NOSIGNAL");
    check(curl_easy_setopt(e, CURLOPT_ERRORBUFFER, impl_->errbuf), "ERRORBUFFER");
    check(curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, o.allow_http ? "https,http" : "https"),
          "PROTOCOLS_STR");
    check(curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L), "FOLLOWLOCATION");
    check(curl_easy_setopt(e, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1), "HTTP_VERSION");
    check(curl_easy_setopt(e, CURLOPT_SSLVERSION, CURL_SSLVERSION_TLSv1_2), "SSLVERSION");
    check(curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L), "SSL_VERIFYPEER");
    check(curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L), "SSL_VERIFYHOST");
    // Only our verify callback decides; never the system store.
    check(curl_easy_setopt(e, CURLOPT_CAINFO, nullptr), "CAINFO");
    check(curl_easy_setopt(e, CURLOPT_CAPATH, nullptr), "CAPATH");
    // A cached session could skip our chain check on resumption; control-plane calls are rare.
    check(curl_easy_setopt(e, CURLOPT_SSL_SESSIONID_CACHE, 0L), "SSL_SESSIONID_CACHE");
    check(curl_easy_setopt(e, CURLOPT_SSL_CTX_FUNCTION, &Impl::ssl_ctx_setup), "SSL_CTX_FUNCTION");
    check(curl_easy_setopt(e, CURLOPT_SSL_CTX_DATA, impl_.get()), "SSL_CTX_DATA");
    check(curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &Impl::on_write), "WRITEFUNCTION");
    check(curl_easy_setopt(e, CURLOPT_WRITEDATA, impl_.get()), "WRITEDATA");
    check(curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, &Impl::on_prereq), "PREREQFUNCTION");
    check(curl_easy_setopt(e, CURLOPT_PREREQDATA, impl_.get()), "PREREQDATA");
    check(curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                           static_cast<long>(o.connect_timeout.count())),
          "CONNECTTIMEOUT_MS");
    check(curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(o.timeout.count())),
          "TIMEOUT_MS");
    check(curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE,
                           static_cast<curl_off_t>(o.max_response_bytes)),
          "MAXFILESIZE_LARGE");
    check(curl_easy_setopt(e, CURLOPT_PROXY, o.proxy.c_str()), "PROXY");
    check(curl_easy_setopt(e, CURLOPT_USERAGENT, o.user_agent.c_str()), "USERAGENT");
    check(curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, nullptr), "ACCEPT_ENCODING");
}

Session::~Session() = default;

const Options& Session::options() const {
    return impl_->opts;
}

Response Session::perform(const Request& req, const ConnectedHook& on_connected) {
    Impl& s = *impl_;
    CURL* e = s.easy.get();
    s.reset_request();
    s.url = req.url;

    CurlUrl u(curl_url());
    if (!u || curl_url_set(u.get(), CURLUPART_URL, req.url.c_str(), 0) != CURLUE_OK)
        throw Error(Error::Kind::invalid_request, "invalid URL \"" + req.url + "\"");
    {
        char* h = nullptr;
        if (curl_url_get(u.get(), CURLUPART_HOST, &h, 0) != CURLUE_OK || !h)
            throw Error(Error::Kind::invalid_request, "URL without a host: \"" + req.url + "\"");
        CurlStr hold(h);
        s.host = h;
        if (s.host.size() > 2 && s.host.front() == '[' && s.host.back() == ']')
            s.host = s.host.substr(1, s.host.size() - 2);
    }

    check(curl_easy_setopt(e, CURLOPT_URL, req.url.c_str()), "URL");
    // Method and body.
    check(curl_easy_setopt(e, CURLOPT_HTTPGET, 1L), "HTTPGET");
    check(curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, nullptr), "CUSTOMREQUEST");
    check(curl_easy_setopt(e, CURLOPT_NOBODY, 0L), "NOBODY");
    if (req.method == "HEAD") {
        check(curl_easy_setopt(e, CURLOPT_NOBODY, 1L), "NOBODY");
    } else if (req.method != "GET" || !req.body.empty()) {
        check(curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
                               static_cast<curl_off_t>(req.body.size())),
              "POSTFIELDSIZE");
        check(curl_easy_setopt(e, CURLOPT_POSTFIELDS, req.body.data()), "POSTFIELDS");
        if (req.method != "POST")
            check(curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req.method.c_str()), "CUSTOMREQUEST");
    }
    // Headers: ours, plus no "Expect: 100-continue" round trip.
    CurlSlist list;
    auto add = [&](const std::string& line) {
        curl_slist* n = curl_slist_append(list.get(), line.c_str());
        if (!n) throw Error(Error::Kind::invalid_request, "out of memory building headers");
        (void)list.release();
        list.reset(n);
    };
    for (const auto& h : req.headers) {
        if (h.name.find_first_of(":\r\n") != std::string::npos ||
            h.value.find_first_of("\r\n") != std::string::npos)
            throw Error(Error::Kind::invalid_request, "invalid header \"" + h.name + "\"");
        add(h.value.empty() ? h.name + ";" : h.name + ": " + h.value);
    }
    add("Expect:");
    check(curl_easy_setopt(e, CURLOPT_HTTPHEADER, list.get()), "HTTPHEADER");
    // Credentials.
    if (req.basic) {
        unsigned long mask = 0;
        if (req.auth_schemes & auth_basic) mask |= CURLAUTH_BASIC;
        if (req.auth_schemes & auth_digest) mask |= CURLAUTH_DIGEST;
        if (mask == 0)
            throw Error(Error::Kind::invalid_request, "credentials given without a scheme");
        // One scheme alone and not preemptive: CURLAUTH_ONLY makes curl probe first (Basic
        // would otherwise go out on the first request). Two schemes: curl always probes.
        const bool one = mask == CURLAUTH_BASIC || mask == CURLAUTH_DIGEST;
        if (one && !(req.preemptive && mask == CURLAUTH_BASIC)) mask |= CURLAUTH_ONLY;
        check(curl_easy_setopt(e, CURLOPT_HTTPAUTH, static_cast<long>(mask)), "HTTPAUTH");
        check(curl_easy_setopt(e, CURLOPT_USERNAME, req.basic->user.c_str()), "USERNAME");
        check(curl_easy_setopt(e, CURLOPT_PASSWORD, req.basic->password.c_str()), "PASSWORD");
    } else {
        check(curl_easy_setopt(e, CURLOPT_HTTPAUTH, static_cast<long>(CURLAUTH_BASIC)), "HTTPAUTH");
        check(curl_easy_setopt(e, CURLOPT_USERNAME, nullptr), "USERNAME");
        check(curl_easy_setopt(e, CURLOPT_PASSWORD, nullptr), "PASSWORD");
    }
    s.hook = &on_connected;

    const CURLcode rc = curl_easy_perform(e);

    // Do not keep pointers to the caller's data in the handle.
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, nullptr);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, nullptr);
    curl_easy_setopt(e, CURLOPT_USERNAME, nullptr);
    curl_easy_setopt(e, CURLOPT_PASSWORD, nullptr);
    s.hook = nullptr;

    if (s.hook_error) std::rethrow_exception(s.hook_error);
    if (rc != CURLE_OK) {
        Error::Kind kind = Error::Kind::transport;
        if (!s.verify_failure.empty() || rc == CURLE_PEER_FAILED_VERIFICATION)
            kind = Error::Kind::untrusted_server;
        else if (s.too_large || rc == CURLE_FILESIZE_EXCEEDED)
            kind = Error::Kind::too_large, s.too_large = true;
        else if (rc == CURLE_OPERATION_TIMEDOUT)
            kind = Error::Kind::timeout;
        else if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST ||
                 rc == CURLE_COULDNT_RESOLVE_PROXY)
            kind = Error::Kind::connect;
        else if (rc == CURLE_SSL_CONNECT_ERROR || rc == CURLE_SSL_CERTPROBLEM)
            kind = Error::Kind::tls;
        else if (rc == CURLE_UNSUPPORTED_PROTOCOL || rc == CURLE_URL_MALFORMAT)
            kind = Error::Kind::invalid_request;
        std::string msg = s.describe(rc, req);
        log::debug(std::string(req.log_part) + ".http_request_failed",
                   {{"method", req.method}, {"url", req.url}, {"error", msg}});
        throw Error(kind, msg);
    }

    Response r;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &r.status);
    long connects = -1;
    curl_easy_getinfo(e, CURLINFO_NUM_CONNECTS, &connects);
    r.connection_reused = connects == 0;
    r.body = std::move(s.body);
    s.body.clear();
    curl_header* prev = nullptr;
    while (curl_header* h = curl_easy_nextheader(e, CURLH_HEADER, -1, prev)) {
        r.headers.push_back({h->name, h->value});
        prev = h;
    }
    // Responses of this transfer: request indexes 0, 1, … that have headers.
    r.responses = 0;
    while (r.responses < 16 && curl_easy_nextheader(e, CURLH_HEADER, r.responses, nullptr))
        ++r.responses;
    if (r.responses == 0) r.responses = 1;
    const bool preemptive_basic = req.preemptive && req.auth_schemes == auth_basic;
    if (r.status == 401) {
        long avail = 0;
        curl_easy_getinfo(e, CURLINFO_HTTPAUTH_AVAIL, &avail);
        unsigned long a = static_cast<unsigned long>(avail);
        // libcurl only reports the schemes it was allowed to use; the scheme token that
        // starts each WWW-Authenticate field tells the rest (one challenge per field, as
        // servers send them; a second challenge inside one field is not looked for).
        for (const auto& h : r.headers) {
            if (!iequals(h.name, "WWW-Authenticate")) continue;
            const std::string_view v(h.value);
            const auto scheme = v.substr(0, v.find_first_of(" \t,"));
            if (iequals(scheme, "Digest")) a |= CURLAUTH_DIGEST;
            if (iequals(scheme, "Basic")) a |= CURLAUTH_BASIC;
            if (iequals(scheme, "Negotiate")) a |= CURLAUTH_NEGOTIATE;
            if (iequals(scheme, "NTLM")) a |= CURLAUTH_NTLM;
            if (iequals(scheme, "Bearer")) a |= CURLAUTH_BEARER;
        }
        if (a & CURLAUTH_BASIC) r.auth_offered |= auth_basic;
        if (a & CURLAUTH_DIGEST) r.auth_offered |= auth_digest;
        for (const auto& [bit, name] :
             {std::pair{CURLAUTH_DIGEST, "Digest"}, std::pair{CURLAUTH_BASIC, "Basic"},
              std::pair{CURLAUTH_NEGOTIATE, "Negotiate"}, std::pair{CURLAUTH_NTLM, "NTLM"},
              std::pair{CURLAUTH_BEARER, "Bearer"}})
            if (a & bit) r.auth_offered_names.emplace_back(name);
    }
    r.credentials_sent = req.basic && (preemptive_basic || r.responses > 1);
    log::debug(std::string(req.log_part) + ".http_request", {{"method", req.method},
                                                             {"url", req.url},
                                                             {"status", r.status},
                                                             {"bytes", r.body.size()},
                                                             {"reused", r.connection_reused},
                                                             {"responses", r.responses}});
    return r;
}

Response fetch(Options options, const Request& request) {
    Session s(std::move(options));
    return s.perform(request);
}

}  // namespace mtls::http
