// Partners that write more than was asked for on a keep-alive connection, for the proxy's
// pool tests. On any echo endpoint:
//   ?extra=response  after the complete answer, a second, unsolicited HTTP response on the
//                    same connection (200, JSON naming the request that triggered it, with
//                    a Set-Cookie) — what a server does that answers one request twice, or
//                    sends a 408 on a connection it keeps open;
//   ?extra=body      the answer's body once more after the answer — for a HEAD request, the
//                    body it must not have (RFC 9110 §9.3.2; servers that ignore HEAD send
//                    it); answered-as-a-whole endpoints only (/echo/headers, /echo/status/…);
//   &extra_delay_ms=N  the extra bytes N ms after the answer (so they arrive while the
//                    client holds the connection idle). The connection stays open.
// A client must not take these bytes as the answer to its next request: RFC 9112 §6.3
// ends a message at its framing, and bytes after it belong to no request.
#pragma once

#include "tests/sandbox/https_server.hpp"
#include "tests/sandbox/stats.hpp"

#include <cstdint>
#include <memory>
#include <string>

namespace mtls::sandbox {

struct Unsolicited {
    enum class Kind { none, response, body } kind = Kind::none;
    std::uint64_t delay_ms = 0;
    std::shared_ptr<std::string> body;  // the answer's body, captured as it is sent (body)
};

// Reads ?extra= / extra_delay_ms= of the exchange; for `body`, hooks the exchange to keep
// a copy of the answer's body. An unknown value is Kind::none.
Unsolicited unsolicited_for(Exchange& ex);

// After the handler answered: writes the extra bytes (after the delay) and counts them in
// stats.unsolicited_sent. Nothing when the exchange closes or was torn down.
Task<void> send_unsolicited(Exchange& ex, const Unsolicited& u, Stats& stats);

}  // namespace mtls::sandbox
