// Revocation checks of upstream connections (docs/revocation.md), for the proxy's workers
// (one gate for all; its state is under a mutex, the checker is thread-safe): after a
// handshake, a stapled OCSP response is verified (no responder round trip), else the
// process checker's cached answer is used, else the check runs on the gate's own threads
// (never on a worker's thread) and the connection resumes on its own worker when it is done. The
// route's policy decides: hard-fail refuses anything but a verified "good"; soft-fail never refuses
// — a revoked or unknown chain is logged (rate-limited), counted and shown in status. The last
// verdict per route is kept for status.
#pragma once

#include "agent/net/asio.hpp"
#include "agent/proxy/errors.hpp"
#include "common/rate_limited_log.hpp"
#include "config/config.hpp"
#include "revocation/checker.hpp"

#include <boost/asio/thread_pool.hpp>

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace mtls::proxy {

struct RouteRevocation {
    revocation::Verdict verdict;
    std::chrono::system_clock::time_point at;
    std::string policy;
};

class RevocationGate {
  public:
    static RevocationGate& instance();

    // Checks the connection's peer chain for `route`; fills `chain` with it. Returns the
    // error to answer (502 upstream_revocation), or an empty error to proceed.
    net::awaitable<ProxyError> check(SSL* ssl, const std::string& route,
                                     config::RevocationPolicy policy,
                                     std::vector<std::shared_ptr<X509>>& chain);
    // Without I/O: whether a certificate of `chain` is now known to be revoked (a pooled
    // connection is not reused then).
    bool revoked_now(const std::vector<std::shared_ptr<X509>>& chain);

    std::map<std::string, RouteRevocation> last_verdicts() const;

  private:
    RevocationGate();
    ProxyError decide(const std::string& route, config::RevocationPolicy policy,
                      const revocation::Verdict& v);

    net::asio::thread_pool pool_{2};
    mutable std::mutex mu_;
    std::map<std::string, RouteRevocation> last_;
    log::RateLimited unknown_log_;
    log::RateLimited revoked_log_;  // soft-fail lets a revoked chain through: said loudly
};

}  // namespace mtls::proxy
