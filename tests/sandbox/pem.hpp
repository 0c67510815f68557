// PEM/DER helpers for the sandbox: reading and writing certificates and keys, thumbprints.
#pragma once

#include "common/ossl.hpp"

#include <filesystem>
#include <string>
#include <vector>

namespace mtls::sandbox {

std::string cert_to_pem(X509* cert);
std::string cert_to_der(X509* cert);
std::string key_to_pem(EVP_PKEY* key);  // unencrypted PKCS#8 (the dev CA's own keys only)

ossl::X509Ptr cert_from_pem(const std::string& pem);
ossl::X509Ptr cert_from_der(const std::string& der);
// Every certificate in a PEM file; throws if none.
std::vector<ossl::X509Ptr> certs_from_file(const std::filesystem::path& path);
ossl::PKey key_from_file(const std::filesystem::path& path);

// base64url(SHA-256(DER)) without padding: RFC 8705 x5t#S256.
std::string x5t_s256(X509* cert);
// Subject as an RFC 4514 string ("CN=a,O=b", most specific first).
std::string subject_rfc4514(const X509_NAME* name);
// First value of an attribute (NID_commonName, …) or "".
std::string name_entry(const X509_NAME* name, int nid);
std::string serial_hex(X509* cert);
// ISO 8601 UTC ("2026-01-02T03:04:05Z").
std::string asn1_time_iso(const ASN1_TIME* t);

// A fresh EC P-256 key.
ossl::PKey new_p256_key();

}  // namespace mtls::sandbox
