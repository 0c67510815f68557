// CSR attributes (RFC 7030 §4.5, RFC 8951 §3): what the EST server asks to find in our CSR.
// CsrAttrs ::= SEQUENCE SIZE (0..MAX) OF AttrOrOID
// AttrOrOID ::= CHOICE { oid OBJECT IDENTIFIER, attribute Attribute }
// Decoded with OpenSSL (d2i_ASN1_SEQUENCE_ANY, d2i_X509_ATTRIBUTE, d2i_X509_EXTENSIONS).
#pragma once

#include <openssl/evp.h>

#include <string>
#include <string_view>
#include <vector>

namespace mtls::est {

struct KeyRequest {
    enum class Type { ec, rsa, ed25519, ed448 } type = Type::ec;
    int curve_nid = 0;             // for ec: NID of the named curve, 0 when the server named none
    int rsa_bits = 0;              // for rsa: requested modulus size, 0 when the server named none
    std::string describe() const;  // "EC P-384", "RSA 3072", "Ed25519"
};

// An attribute or extension type the server asks to find in the CSR, beyond the key, the
// digest, challengePassword and the subjectAltName/keyUsage/extendedKeyUsage/basicConstraints
// the CA fills in itself. Whether we can supply it depends on [est.csr_attributes].
struct RequestedItem {
    std::string oid;               // dotted form
    bool extension = false;        // asked for as an extension (extensionRequest, or a known
                                   // extension type): goes into the CSR's extensionRequest; else a
                                   // PKCS#10 attribute
    std::string describe() const;  // "CSR attribute macAddress (1.3.6.1.1.1.1.22)"
};

struct CsrAttributes {
    bool challenge_password = false;       // asks for challengePassword (PoP linking, §3.5)
    std::vector<KeyRequest> keys;          // acceptable key types, in the server's order
    std::string digest;                    // "SHA256" | "SHA384" | "SHA512" from a signature
                                           // algorithm OID or a bare hash algorithm OID
                                           // (id-sha384 …); empty: no preference
    std::vector<std::string> extensions;   // extension types asked for ("subjectAltName", OIDs)
    std::vector<std::string> san_types;    // GeneralName types in a requested SAN ("DNS", "IP")
    std::vector<RequestedItem> requested;  // attributes/extensions asked for by OID
    std::vector<std::string> unhandled;    // things we recognised or not but cannot honour
    bool empty() const;
    std::string describe() const;  // one line for logs
};

// Decodes the DER CsrAttrs. Throws est::Error(bad_response).
CsrAttributes parse_csrattrs_der(std::string_view der);
// The same, with NUL bytes and whitespace allowed after the SEQUENCE when `allow_padding`.
CsrAttributes parse_csrattrs_der_padded(std::string_view der, bool allow_padding);

// Decodes an HTTP body: base64 (with or without line breaks and padding), or raw DER; trailing
// NUL bytes and whitespace are ignored (some servers send a C string with its terminator). An
// empty body means no attributes. Throws est::Error(bad_response).
CsrAttributes parse_csrattrs(std::string_view body);

// Whether `key` satisfies the server's key requests; empty string when it does (or when the
// server asked for nothing), else a sentence naming what was asked and what we have.
std::string key_mismatch(const CsrAttributes& attrs, EVP_PKEY* key);

}  // namespace mtls::est
