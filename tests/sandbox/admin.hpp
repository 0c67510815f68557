// /sandbox/* on every port: the counters and fault modes the tests drive.
//   GET  /sandbox/stats            counters (stats.hpp) as JSON
//   POST /sandbox/stats/reset      zero the counters and the request log
//   GET  /sandbox/requests         the last 1000 requests with their token binding
//   GET  /sandbox/mode             the current fault modes
//   POST /sandbox/mode?k=v&…       change them: as=normal|down|slow|400|401|500|hostile-json|
//                                  error, delay_ms=N, error=<oauth code>,
//                                  variant=truncated|deep|types|huge|not-json|empty|no-token,
//                                  est=normal|401|403|500, est_retry=N, retry_after=S,
//                                  est_pop=off|tls-unique|tls-exporter|any
//   GET  /sandbox/info             the same JSON as --info-file
//   /sandbox/revocation, /sandbox/revoke   with --revocation (revocation_admin.hpp)
#pragma once

#include "tests/sandbox/https_server.hpp"
#include "tests/sandbox/modes.hpp"
#include "tests/sandbox/revocation_admin.hpp"
#include "tests/sandbox/stats.hpp"

namespace mtls::sandbox {

class Admin {
  public:
    Admin(Modes& modes, Stats& stats) : modes_(modes), stats_(stats) {}
    void set_info(nlohmann::json info) { info_ = std::move(info); }
    void set_revocation(RevocationAdmin* r) { revocation_ = r; }
    Task<void> handle(Exchange& ex);

  private:
    Modes& modes_;
    Stats& stats_;
    nlohmann::json info_;
    RevocationAdmin* revocation_ = nullptr;
};

}  // namespace mtls::sandbox
