// Revocation checks of upstream connections (docs/revocation.md), for the proxy's io thread:
// after a handshake, a stapled OCSP response is verified (no responder round trip), else the
// process checker's cached answer is used, else the check runs on the gate's own threads
// (never on the io thread) and the connection resumes when it is done. The route's policy
// decides: revoked is always refused; unknown is refused under hard-fail and logged
// (rate-limited) and counted under soft-fail. The last verdict per route is kept for status.
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
};

}  // namespace mtls::proxy
