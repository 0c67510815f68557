// The sandbox CA's CRL distribution point: plain HTTP (as CAs publish CRLs, RFC 5280
// §4.2.1.13), GET /crl/issuing.crl and /crl/root.crl, DER, application/pkix-crl. Counts
// the requests (GET /sandbox/revocation on the HTTPS ports shows them).
#pragma once

#include "tests/sandbox/https_server.hpp"
#include "tests/sandbox/revocations.hpp"

#include <atomic>

namespace mtls::sandbox {

class CrlServer {
  public:
    explicit CrlServer(asio::io_context& io);
    // Set before the first request (the CA needs the listener's port before it exists).
    void set_revocations(Revocations* r) { revocations_ = r; }
    void listen(const asio::ip::address& addr, std::uint16_t port);
    std::uint16_t port() const { return port_; }
    void stop();
    // Refuse connections (the distribution point is down) / serve again.
    void set_down(bool down) { down_ = down; }
    std::uint64_t requests() const { return requests_.load(); }

  private:
    Task<void> accept_loop();
    Task<void> serve(tcp::socket socket);

    asio::io_context& io_;
    Revocations* revocations_ = nullptr;
    tcp::acceptor acceptor_;
    std::uint16_t port_ = 0;
    std::atomic<bool> down_{false};
    std::atomic<std::uint64_t> requests_{0};
};

}  // namespace mtls::sandbox
