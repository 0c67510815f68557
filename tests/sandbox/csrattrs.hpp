// The sandbox's CSR attributes (RFC 7030 §4.5, RFC 8951 §3): what GET csrattrs answers, from a
// spec, and — in enforcement mode, like CAs with strict profiles (EJBCA, libest built with
// csrattrs enforcement) — what a (re)enroll CSR must then hold.
//
// Spec: "default" (ecdsa-with-SHA256, id-ecPublicKey=prime256v1, + challengePassword when PoP
// is on), "none" (no attributes: 204), or comma-separated items:
//   OID            a bare OID: a key type or curve, a signature or hash algorithm (sha384), an
//                  extension type, or an attribute type to include (macAddress)
//   OID=OID[+OID]  an Attribute with OID values (id-ecPublicKey=secp384r1,
//                  extensionRequest=keyUsage)
//   OID=N          an Attribute with an INTEGER value (rsaEncryption=3072)
// OIDs in dotted form, OpenSSL names, or macAddress.
#pragma once

#include <openssl/x509.h>

#include <string>

#include "tests/sandbox/options.hpp"

namespace mtls::sandbox {

// The DER CsrAttrs for `spec`; empty for "none". Throws std::invalid_argument on a bad spec.
std::string build_csrattrs_der(const std::string& spec, PopMode pop);

// What `req` lacks of what `spec` asks for, one clause per item, "; "-separated; empty when
// it satisfies every item. challengePassword is left to the proof-of-possession check.
std::string csrattrs_unmet(const std::string& spec, PopMode pop, X509_REQ* req);

}  // namespace mtls::sandbox
