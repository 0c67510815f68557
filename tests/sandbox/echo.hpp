// Echo endpoints on the partner API port, for the proxy's tests:
//   /echo/status/<code>          answers that status
//   /echo/headers                the request line, headers, TLS and token details as JSON
//   /echo/body                   streams the request body back (same length or chunked)
//   /echo/bytes/<n>[?chunked=1]  n bytes streamed (Content-Length, or chunked)
//   /echo/slow/<ms>              answers after <ms> milliseconds
//   /echo/reset                  starts a response, then resets the TCP connection
// ?extra=response|body on any of them: more bytes after the answer (unsolicited.hpp).
#pragma once

#include "tests/sandbox/https_server.hpp"
#include "tests/sandbox/partner_api.hpp"

namespace mtls::sandbox {

// Handles a path under /echo/; `token` is the inspected Authorization header.
Task<void> handle_echo(Exchange& ex, const TokenView& token);

}  // namespace mtls::sandbox
