// Encodings used across the parts: base64 (RFC 4648 §4, tolerant of line breaks on input),
// base64url without padding (§5), lower-case hex, SHA-256.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace mtls::encoding {

std::string base64(std::string_view bytes);
// Accepts standard base64 with or without padding; ignores ASCII whitespace (CR, LF, space,
// tab) anywhere. Returns nullopt on any other character or bad length.
std::optional<std::string> base64_decode(std::string_view text);

std::string base64url(std::string_view bytes);
std::optional<std::string> base64url_decode(std::string_view text);

std::string hex(std::string_view bytes);
// Accepts upper/lower hex, optionally with ':' separators (as `openssl x509 -fingerprint`).
std::optional<std::string> hex_decode(std::string_view text);

std::string sha256(std::string_view bytes);

}  // namespace mtls::encoding
