// A blocking revocation check of a TLS connection's server chain, for the control-plane
// clients (EST, the OAuth token endpoint) that run on their own threads: after the handshake
// the stapled response is used if the server sent one, else the process checker (cache,
// then OCSP / CRL fetches). The policy decides (policy.hpp); a refusal throws Refused with a
// message naming `what` ("EST server certificate revoked: …").
#pragma once

#include <openssl/ssl.h>

#include <functional>
#include <stdexcept>
#include <string>

#include "revocation/policy.hpp"

namespace mtls::revocation {

class Refused : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

// Checks `ssl`'s peer chain for `target` (counters: "est", "oauth:<profile>"); `what` names
// the server in messages ("EST server"). Off: does nothing. Throws Refused.
void check_connection(SSL* ssl, Policy policy, const std::string& target, const std::string& what);

// The same as a callable for http::Options::check_connection.
std::function<void(SSL*)> connection_check(Policy policy, std::string target, std::string what);

}  // namespace mtls::revocation
