// The client-side TLS setup of one route for one identity: an SSL_CTX with the identity's
// certificate, chain and key (any EVP_PKEY — a token key signs inside our provider), the
// route's CA bundle, optional SPKI pins, TLS 1.3 (1.2 if route.tls_min_version says so),
// and a client session cache so new connections resume instead of doing a full handshake
// (which would mean a signature on the token). On rotation the pool builds a new context;
// the old one, with its sessions, dies with the last connection that uses it. One context
// serves the route's pools on every proxy worker (RouteUpstream in upstream_pool.hpp): a
// ticket one worker received resumes a connection of another; the session cache is under a
// mutex, the rest is not changed after construction.
#pragma once

#include "agent/identity/identity.hpp"
#include "agent/net/asio_ssl.hpp"
#include "agent/proxy/router.hpp"
#include "config/config.hpp"

#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace mtls::proxy {

class TlsClientContext {
  public:
    // Throws std::runtime_error saying what failed (CA file unreadable, key rejected, …).
    TlsClientContext(const config::Route& route, const UpstreamTarget& target,
                     identity::IdentityPtr id);
    TlsClientContext(const TlsClientContext&) = delete;
    TlsClientContext& operator=(const TlsClientContext&) = delete;

    net::ssl::context& asio_context() { return ctx_; }
    const identity::IdentityPtr& identity() const { return identity_; }

    // Per new connection: SNI, host name (or IP) verification, a cached session to resume.
    // Returns false and sets `error` when OpenSSL refuses.
    bool prepare(SSL* ssl, std::string& error);

    // After a failed handshake: why, in words ("certificate verify failed for host (…)").
    std::string describe_failure(SSL* ssl, const std::string& transport_error) const;

    std::size_t cached_sessions() const {
        std::lock_guard lk(sessions_mu_);
        return sessions_.size();
    }
    const std::string& route_name() const { return route_name_; }
    // Not off: every connection asks for a stapled OCSP response (status_request) and the
    // peer chain is checked after the handshake (revocation_gate.hpp).
    config::RevocationPolicy revocation() const { return revocation_; }

  private:
    static int on_new_session(SSL* ssl, SSL_SESSION* session);
    static int on_verify(int preverify_ok, X509_STORE_CTX* store);
    void add_session(SSL_SESSION* session);

    net::ssl::context ctx_;
    identity::IdentityPtr identity_;
    UpstreamTarget target_;
    std::vector<std::string> pins_;  // raw SHA-256 of SPKI DER
    mutable std::mutex sessions_mu_;
    std::deque<ossl::SslSession> sessions_;  // under sessions_mu_
    std::string route_name_;
    config::RevocationPolicy revocation_ = config::RevocationPolicy::off;
};

}  // namespace mtls::proxy
