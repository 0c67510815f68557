// /sandbox/revocation and /sandbox/revoke (on every HTTPS port, with the other /sandbox/*
// endpoints; only when the sandbox runs with --revocation):
//   GET  /sandbox/revocation              issued certificates and their status, CRL and
//                                         staple counters, the URLs certificates carry
//   POST /sandbox/revocation?staple=on|off&crl=up|down
//                                         stapling on the partner API; the CRL
//                                         distribution point answering or refusing
//   POST /sandbox/revoke?serial=HEX&reason=keyCompromise
//   POST /sandbox/revoke?cert=partner-leaf|intermediate&reason=…
//                                         revoke (reason: an RFC 5280 name, default
//                                         unspecified); index.txt and the CRLs are rewritten
//                                         at once and the staple is fetched again
#pragma once

#include "tests/sandbox/crl_server.hpp"
#include "tests/sandbox/https_server.hpp"
#include "tests/sandbox/revocations.hpp"
#include "tests/sandbox/stapler.hpp"

namespace mtls::sandbox {

struct RevocationAdmin {
    Revocations& revocations;
    CrlServer& crl_server;
    Stapler* stapler;  // null without --api-staple-url / --ocsp-url
    std::string partner_leaf_serial, intermediate_serial;
    nlohmann::json urls;

    Task<void> handle(Exchange& ex, std::string body);
};

}  // namespace mtls::sandbox
