// A small synchronous HTTPS client for control-plane calls (EST, OAuth token endpoint,
// discovery), on the libcurl easy API.
//
// - Server trust is explicit: a CA file, in-memory CA certificates, or a pinned SHA-256
//   fingerprint of one certificate of the server's chain (RFC 7030 §4.1.1 bootstrap). The
//   whole chain check is ours (SSL_CTX_set_cert_verify_callback), the system store is never
//   used, and the host name (or IP address) of the URL is always checked.
// - The client identity (certificate + chain + EVP_PKEY) is installed on the SSL_CTX, so the
//   key may live on a token: curl never sees a key file.
// - A Session is one curl easy handle: consecutive requests reuse its connection, and the
//   SSL* of that connection can be read while a request is on it (channel binding).
// - Bodies, credentials and tokens are never logged.
#pragma once

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/ossl.hpp"

namespace mtls::http {

// Who the server must be: CA certificates (ca_certs, else ca_file) and/or a pinned
// certificate. With both, the server's chain passes when it validates against the CA
// certificates, or else when it presents the pinned certificate and validates up to it.
// An empty ServerTrust is refused (no implicit system trust store).
struct ServerTrust {
    std::string ca_file;                  // PEM file with one or more trust anchors
    std::vector<ossl::X509Ptr> ca_certs;  // in-memory trust anchors (e.g. stored EST CA certs)
    std::string pinned_sha256;            // 32 raw bytes: SHA-256 of the DER of a certificate
                                          // that must appear in the server's presented chain

    ServerTrust() = default;
    ServerTrust(const ServerTrust& o);
    ServerTrust& operator=(const ServerTrust& o);
    ServerTrust(ServerTrust&&) noexcept = default;
    ServerTrust& operator=(ServerTrust&&) noexcept = default;

    static ServerTrust from_ca_file(std::string path);
    static ServerTrust from_certs(const std::vector<X509*>& certs);  // up-refs each
    static ServerTrust from_pin(std::string sha256_raw);             // 32 raw bytes
};

// The TLS client identity. The key may be a token key (our provider): only EVP APIs are used.
struct ClientIdentity {
    ossl::X509Ptr cert;
    std::vector<ossl::X509Ptr> chain;  // intermediates, leaf's issuer first
    ossl::PKey key;

    // Up-refs every argument; chain may be null.
    static std::shared_ptr<const ClientIdentity> make(X509* cert, STACK_OF(X509) * chain,
                                                      EVP_PKEY* key);
    static std::shared_ptr<const ClientIdentity> make(X509* cert, const std::vector<X509*>& chain,
                                                      EVP_PKEY* key);
};

enum class TlsMax { any, tls1_2, tls1_3 };

struct Options {
    ServerTrust trust;
    std::shared_ptr<const ClientIdentity> identity;  // null: no client certificate
    std::chrono::milliseconds connect_timeout{10000};
    std::chrono::milliseconds timeout{30000};  // whole request, connect included
    std::size_t max_response_bytes = 1u << 20;
    TlsMax tls_max = TlsMax::any;  // TLS 1.2 is always the minimum
    std::string proxy;             // "" = no proxy (the environment's *_proxy is ignored)
    std::string user_agent = "mtls-agent";
    bool allow_http = false;  // plain http:// URLs (tests of non-TLS peers only)
    // Called with the SSL* of the connection before every request on it, before the
    // request's own hook (e.g. a revocation check of the server's chain); an exception aborts
    // the transfer and is rethrown by perform() as is.
    std::function<void(SSL*)> check_connection;
};

struct Header {
    std::string name;
    std::string value;
};

// HTTP credentials, user and password, for Basic (RFC 7617) or Digest (RFC 7616); the name
// is historical. libcurl does both schemes.
struct BasicAuth {
    std::string user;
    std::string password;
    ~BasicAuth();  // wipes the password
};

// Which HTTP authentication schemes credentials may be used with (a bit set).
enum AuthScheme : unsigned { auth_basic = 1u, auth_digest = 2u };

struct Request {
    std::string method = "GET";
    std::string url;
    std::vector<Header> headers;
    std::string body;
    const BasicAuth* basic = nullptr;  // credentials, borrowed for the call; never logged
    // How `basic` is used. `preemptive` with auth_schemes == auth_basic: Basic on the first
    // request (what RFC 7617 clients do). Otherwise challenge-driven: the request goes out
    // without credentials and only a 401 whose WWW-Authenticate offers one of auth_schemes
    // is answered (libcurl picks the safest offered and resends the body on the same
    // connection when the server keeps it open).
    unsigned auth_schemes = auth_basic;
    bool preemptive = true;
    // The part the debug events are named after: "<log_part>.http_request[_failed]".
    std::string_view log_part = "est";
};

struct Response {
    long status = 0;
    std::vector<Header> headers;  // of the final response, in order
    std::string body;
    bool connection_reused = false;  // no new connection was made for this request
    int responses = 1;               // HTTP responses read (an auth round trip makes two)
    bool credentials_sent = false;   // an Authorization header went out with the credentials
    // On a 401: the schemes the server's WWW-Authenticate offered, as libcurl read them
    // (auth_basic / auth_digest bits) and by name ("Digest", "Basic", "Negotiate", …).
    unsigned auth_offered = 0;
    std::vector<std::string> auth_offered_names;

    // First header with that name, case-insensitive.
    std::optional<std::string_view> header(std::string_view name) const;
    // The body's first `max` printable bytes (others as '.'), for error messages.
    std::string body_excerpt(std::size_t max = 200) const;
};

// A failure to get any HTTP response. HTTP error statuses are not errors here: they come
// back as a Response.
class Error : public std::runtime_error {
  public:
    enum class Kind {
        invalid_request,   // bad URL, bad options
        connect,           // DNS, TCP connect, proxy
        tls,               // handshake failed (not a trust decision)
        untrusted_server,  // the server's chain or name failed our checks
        timeout,
        too_large,  // response larger than max_response_bytes
        transport,  // anything else during the transfer
    };
    Error(Kind k, const std::string& msg) : std::runtime_error(msg), kind_(k) {}
    Kind kind() const { return kind_; }

  private:
    Kind kind_;
};

// Called when the request's connection is established (or reused) and before the request
// is sent, with the SSL* of that connection (null for http://).
using ConnectedHook = std::function<void(SSL*)>;

class Session {
  public:
    explicit Session(Options options);
    ~Session();
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;

    // Throws http::Error when no response could be read; an exception thrown by `on_connected`
    // aborts the transfer and is rethrown as is.
    Response perform(const Request& request, const ConnectedHook& on_connected = {});

    const Options& options() const;

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// One request on a fresh session.
Response fetch(Options options, const Request& request);

// Initializes libcurl once per process (thread-safe); sessions call it themselves.
void global_init();

}  // namespace mtls::http
