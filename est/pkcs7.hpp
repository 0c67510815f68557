// EST certs-only responses (RFC 7030 §4.1.3, §4.2.3; RFC 8951 §3): a base64 PKCS#7
// SignedData with certificates and no content, no signers that we use.
#pragma once

#include <string_view>
#include <vector>

#include "common/ossl.hpp"

namespace mtls::est {

// Decodes a certs-only body. Base64 is the rule (whitespace and line breaks anywhere are
// fine, a Content-Transfer-Encoding header is irrelevant per RFC 8951); a body that is not
// base64 but is DER (starts with a SEQUENCE) is accepted too. `content_type`, when given,
// must be application/pkcs7-mime (parameters such as smime-type=certs-only are ignored).
// Throws est::Error(bad_response) for garbage, truncated or trailing data, a PKCS#7 that is
// not signed-data, signed-data with content, and no certificates.
std::vector<ossl::X509Ptr> parse_certs_only(std::string_view body,
                                            std::string_view content_type = {});

// The media type without parameters, lower-cased ("application/pkcs7-mime").
std::string media_type(std::string_view content_type);

}  // namespace mtls::est
