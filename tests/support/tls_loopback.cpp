#include "tests/support/tls_loopback.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include <openssl/err.h>

#include "common/ossl_error.hpp"

namespace mtls::test {

TlsServer::TlsServer(const TlsServerOptions& o) : ctx_(SSL_CTX_new(TLS_server_method())) {
    if (!ctx_) throw ossl::Error("SSL_CTX_new");
    SSL_CTX_set_min_proto_version(ctx_.get(), o.min_version);
    SSL_CTX_set_max_proto_version(ctx_.get(), o.max_version);
    if (SSL_CTX_use_certificate(ctx_.get(), o.cert) != 1 ||
        SSL_CTX_use_PrivateKey(ctx_.get(), o.key) != 1)
        throw ossl::Error("test server certificate/key");
    X509_STORE* store = SSL_CTX_get_cert_store(ctx_.get());
    X509_STORE_add_cert(store, o.client_ca);
    SSL_CTX_set_verify(ctx_.get(), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
    SSL_CTX_set_session_cache_mode(ctx_.get(), SSL_SESS_CACHE_OFF);
    SSL_CTX_set_num_tickets(ctx_.get(), 0);
    if (!o.client_sigalgs.empty() &&
        SSL_CTX_set1_client_sigalgs_list(ctx_.get(), o.client_sigalgs.c_str()) != 1)
        throw ossl::Error("client sigalgs " + o.client_sigalgs);

    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (listen_fd_ < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::listen(listen_fd_, 128) != 0 ||
        ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
        ::close(listen_fd_);
        throw std::runtime_error(std::string("bind/listen: ") + std::strerror(errno));
    }
    port_ = ntohs(a.sin_port);
    for (int i = 0; i < o.threads; ++i) threads_.emplace_back([this] { serve(); });
}

TlsServer::~TlsServer() {
    stop_ = true;
    for (auto& t : threads_) t.join();
    ::close(listen_fd_);
}

std::vector<ServerHandshake> TlsServer::results() const {
    std::lock_guard lk(mu_);
    return results_;
}

void TlsServer::record(const ServerHandshake& r) {
    (r.ok ? ok_ : failed_)++;
    std::lock_guard lk(mu_);
    results_.push_back(r);
}

void TlsServer::serve() {
    while (!stop_) {
        pollfd p{listen_fd_, POLLIN, 0};
        if (::poll(&p, 1, 50) <= 0) continue;
        const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd < 0) continue;  // another worker took it
        ServerHandshake r;
        ossl::Ssl ssl(SSL_new(ctx_.get()));
        timeval tv{10, 0};
        ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        SSL_set_fd(ssl.get(), fd);
        ERR_clear_error();
        if (SSL_accept(ssl.get()) == 1 && SSL_get0_peer_certificate(ssl.get()) &&
            SSL_get_verify_result(ssl.get()) == X509_V_OK) {
            r.ok = true;
            r.version = SSL_version(ssl.get());
            SSL_get_peer_signature_type_nid(ssl.get(), &r.peer_sig_nid);
            char buf[256];
            X509_NAME_oneline(X509_get_subject_name(SSL_get0_peer_certificate(ssl.get())), buf,
                              sizeof buf);
            r.peer_subject = buf;
            record(r);  // before answering: a client that got the byte finds the record
            SSL_write(ssl.get(), "k", 1);
            SSL_shutdown(ssl.get());
        } else {
            r.error = ossl::drain_errors();
            record(r);
        }
        ERR_clear_error();
        ssl.reset();
        ::close(fd);
    }
}

ClientHandshake tls_connect(SSL_CTX* ctx, std::uint16_t port) {
    ClientHandshake r;
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        r.error = std::string("socket: ") + std::strerror(errno);
        return r;
    }
    timeval tv{10, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        r.error = std::string("connect: ") + std::strerror(errno);
        ::close(fd);
        return r;
    }
    ossl::Ssl ssl(SSL_new(ctx));
    SSL_set_fd(ssl.get(), fd);
    SSL_set_tlsext_host_name(ssl.get(), "localhost");
    ERR_clear_error();
    char byte = 0;
    if (SSL_connect(ssl.get()) == 1 && SSL_read(ssl.get(), &byte, 1) == 1 && byte == 'k') {
        r.ok = true;
        r.version = SSL_version(ssl.get());
        SSL_shutdown(ssl.get());
    } else {
        r.error = ossl::drain_errors();
    }
    ERR_clear_error();
    ssl.reset();
    ::close(fd);
    return r;
}

}  // namespace mtls::test
