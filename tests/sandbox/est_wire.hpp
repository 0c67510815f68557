// How the sandbox's EST server puts bytes on the wire in the modes modelled on real servers:
// libest's base64 decoding of request bodies, one-line unpadded response bodies (RFC 8951),
// a 202 whose body is ended by closing the connection, and a CGI "Status:" field.
#pragma once

#include "tests/sandbox/https_server.hpp"

#include <optional>
#include <string>
#include <string_view>

namespace mtls::sandbox {

// Decodes like libest's est_base64_decode: an OpenSSL base64 BIO without
// BIO_FLAGS_BASE64_NO_NL. It reads lines: one unterminated line decodes to nothing, which is
// what makes libest answer 400 "Invalid or corrupted pkcs10 request". nullopt when nothing
// decodes.
std::optional<std::string> bio_base64_decode(std::string_view text);

// A base64 response body: 64-column lines each ending in "\n", or (oneline) one line
// without padding and without a trailing newline.
std::string est_base64_body(std::string_view der, bool oneline);

// Writes `res` with neither Content-Length nor chunked coding and Connection: close, then
// lets the connection close (HTTP/1.1 §6.3 item 8: the body ends when the server closes).
Task<void> send_close_delimited(Exchange& ex, StringResponse res);

}  // namespace mtls::sandbox
