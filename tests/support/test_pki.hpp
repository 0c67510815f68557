// A small test PKI: a CA (in-memory EC P-256 key) that issues client and server certificates
// for any public key, including keys that live on a token (the certificate gets the key's
// public half through the provider's public export).
#pragma once

#include <string>

#include "common/ossl.hpp"

namespace mtls::test {

struct TestCa {
    ossl::PKey key;
    ossl::X509Ptr cert;
};

// A self-signed CA certificate (basicConstraints CA:TRUE, keyCertSign), valid for a day.
TestCa make_test_ca(const std::string& common_name = "mtls test CA");

enum class CertUsage { client, server };

// A certificate for `pub` with subject CN=common_name, signed by `ca`. Server certificates
// carry subjectAltName DNS:localhost, IP:127.0.0.1 and serverAuth; client ones clientAuth.
ossl::X509Ptr issue_cert(const TestCa& ca, EVP_PKEY* pub, const std::string& common_name,
                         CertUsage usage);

// A fresh in-memory key (for test servers): "EC" P-256 or "RSA" 2048.
ossl::PKey make_software_key(const std::string& type = "EC");

std::string to_pem(X509* cert);
std::string to_pem(EVP_PKEY* key);  // private key PEM (software keys only)
std::string to_der(X509* cert);
void write_file(const std::string& path, const std::string& data);

}  // namespace mtls::test
