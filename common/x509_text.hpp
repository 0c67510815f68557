// Text forms of certificates that several parts print or store: the serial number as status,
// export and error messages show it, and PEM (the state file, `mtls-agentctl cert`, [export]).
#pragma once

#include <openssl/x509.h>

#include <string>
#include <vector>

namespace mtls::x509text {

// The serial number in upper-case hex (OpenSSL's BN_bn2hex); "" when it cannot be read.
std::string serial_hex(const X509* cert);

// The certificates as PEM, in the order given. Throws ossl::Error when one cannot be written.
std::string pem(const std::vector<X509*>& certs);
inline std::string pem(X509* cert) {
    return pem(std::vector<X509*>{cert});
}

}  // namespace mtls::x509text
