// What a TLS connection tells revocation checking: the peer's verified chain (leaf first, up
// to the trust anchor) and the stapled OCSP response, if any.
#pragma once

#include <openssl/ssl.h>

#include <memory>
#include <string>
#include <vector>

namespace mtls::revocation {

// SSL_get0_verified_chain; on a resumed session (no verification ran) the chain is built
// again from the peer's certificates and the SSL_CTX's trust store. Empty when neither works.
std::vector<std::shared_ptr<X509>> verified_chain(SSL* ssl);
// The stapled OCSP response (DER), "" when the server sent none.
std::string stapled_response(SSL* ssl);
// Raw pointers of a shared chain, for Checker calls.
std::vector<X509*> raw_chain(const std::vector<std::shared_ptr<X509>>& chain);

}  // namespace mtls::revocation
