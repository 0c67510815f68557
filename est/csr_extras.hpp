// [est.csr_attributes] meets the server's csrattrs: which configured attributes and extensions
// go into the CSR, and in which form; which of the server's requests stay unmet. And their
// encoding (OpenSSL: X509_ATTRIBUTE, X509V3_EXT_nconf).
//
// Placement: a type OpenSSL knows as an extension (keyUsage, …) is an extension; so is a type
// the server lists in an extensionRequest. Anything else (macAddress, asked for as a bare
// OID, RFC 7030 §4.5.2) is a PKCS#10 attribute. Configured items the server did not ask for
// are sent too: the operator asked for them.
#pragma once

#include <openssl/x509.h>

#include <string>
#include <vector>

#include "config/config.hpp"
#include "est/csr.hpp"
#include "est/csrattrs.hpp"

namespace mtls::est {

struct CsrExtrasPlan {
    std::vector<CsrExtra> items;
    // One sentence per request we cannot honour, naming the config key to set.
    std::vector<std::string> unmet;
};

CsrExtrasPlan plan_csr_extras(const CsrAttributes& asked,
                              const std::vector<config::CsrAttribute>& configured);

// "est.csr_attributes.macAddress" (the key quoted when it is a dotted OID).
std::string csr_attribute_config_key(const std::string& key);

// Appends the extension items to `exts` / adds the attribute items to `req`. Throws
// est::Error(config) naming the config key when a value cannot be encoded.
void append_extra_extensions(STACK_OF(X509_EXTENSION) * exts, const std::vector<CsrExtra>& items);
void add_extra_attributes(X509_REQ* req, const std::vector<CsrExtra>& items);

}  // namespace mtls::est
