// A real TLS server on 127.0.0.1 (OpenSSL, worker threads) that requires and verifies a
// client certificate, and a blocking TLS client, for handshake tests.
//
// The server answers each connection that completes the handshake (with a verified client
// certificate) with one byte "k" and records what it saw; the client reads that byte, so a
// client success means the server accepted the client certificate and its signature.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/ossl.hpp"

namespace mtls::test {

struct TlsServerOptions {
    X509* cert = nullptr;       // server certificate
    EVP_PKEY* key = nullptr;    // its key
    X509* client_ca = nullptr;  // CA that must have issued the client certificate
    int min_version = TLS1_2_VERSION;
    int max_version = TLS1_3_VERSION;
    std::string client_sigalgs;  // e.g. "RSA+SHA256" (CertificateRequest signature_algorithms)
    int threads = 2;
};

struct ServerHandshake {
    bool ok = false;
    std::string error;
    int version = 0;               // TLS1_3_VERSION, …
    int peer_sig_nid = NID_undef;  // SSL_get_peer_signature_type_nid: EVP_PKEY_RSA_PSS, …
    std::string peer_subject;
};

class TlsServer {
  public:
    explicit TlsServer(const TlsServerOptions& o);
    ~TlsServer();
    TlsServer(const TlsServer&) = delete;
    TlsServer& operator=(const TlsServer&) = delete;

    std::uint16_t port() const noexcept { return port_; }
    std::vector<ServerHandshake> results() const;
    std::size_t ok_count() const noexcept { return ok_.load(); }
    std::size_t failed_count() const noexcept { return failed_.load(); }

  private:
    void serve();
    void record(const ServerHandshake& r);
    ossl::SslCtx ctx_;
    int listen_fd_ = -1;
    std::uint16_t port_ = 0;
    std::atomic<bool> stop_{false};
    std::atomic<std::size_t> ok_{0}, failed_{0};
    mutable std::mutex mu_;
    std::vector<ServerHandshake> results_;
    std::vector<std::thread> threads_;
};

struct ClientHandshake {
    bool ok = false;
    std::string error;
    int version = 0;
};

// Connects to 127.0.0.1:port with `ctx` (which carries the client certificate and key),
// handshakes, and reads the server's one-byte answer. Never throws.
ClientHandshake tls_connect(SSL_CTX* ctx, std::uint16_t port);

}  // namespace mtls::test
