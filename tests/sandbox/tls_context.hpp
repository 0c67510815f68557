// Server TLS contexts of the sandbox (one per service): TLS 1.2–1.3, the server chain from
// the dev CA, session tickets and a session cache for resumption, and a client-certificate
// request that never fails the handshake for a missing certificate (the services answer
// 401 at the HTTP level instead).
#pragma once

#include "common/ossl.hpp"

#include <string>
#include <vector>

namespace mtls::sandbox {

enum class ClientCerts {
    verify,      // request; a presented certificate must chain to `trusted` (else alert)
    accept_any,  // request; accept anything (self-signed too), the service checks it
};

struct ServerTlsConfig {
    EVP_PKEY* key = nullptr;
    std::vector<X509*> chain;  // leaf first
    ClientCerts client_certs = ClientCerts::accept_any;
    X509_STORE* trusted = nullptr;       // for ClientCerts::verify (reference is taken)
    std::vector<X509*> client_ca_names;  // CAs named in the CertificateRequest
    std::string session_id_context;      // distinct per service
    // TLS 1.2 only with session-ID resumption and no tickets (--est-tls-max 1.2): a
    // server where tls-unique is the channel binding, on resumed sessions too.
    bool tls12_only = false;
    // TLS 1.3 tickets that resume once (--api-single-use-tickets): stateful tickets in the
    // server's session cache, removed when used (OpenSSL's anti-replay), as a server does
    // that wants 0-RTT replay protection. Still 2 tickets per full handshake, 1 per
    // resumption (OpenSSL's defaults). Without it tickets are stateless and may be reused.
    bool single_use_tickets = false;
    // No resumption at all (--api-no-tickets): no tickets sent, no session cache, as a
    // server configured without them; every handshake is full (benchmarks: what resumption
    // saves).
    bool no_tickets = false;
};

ossl::SslCtx make_server_ctx(const ServerTlsConfig& cfg);

}  // namespace mtls::sandbox
