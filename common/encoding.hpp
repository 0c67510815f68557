// Encodings used across the parts: base64 (RFC 4648 §4, tolerant of line breaks on input),
// base64 in MIME lines (RFC 2045 §6.8, as RFC 7030 bodies are sent), base64url without
// padding (§5), lower-case hex, SHA-256. Encoding is OpenSSL's (EVP_EncodeBlock /
// EVP_EncodeUpdate); decoding normalises the input and hands it to EVP_DecodeBlock.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace mtls::encoding {

// One unbroken line with padding, no newline (headers, JSON, challengePassword).
std::string base64(std::string_view bytes);
// MIME body form (RFC 2045 §6.8): lines of 64 characters, each ending in "\n" (the last one
// too); "" for no bytes. What EVP_EncodeUpdate/Final and a base64 BIO write, and what
// RFC 7030 servers (libest's decoder among them) expect in a request body.
std::string base64_lines(std::string_view bytes);
// Accepts standard base64 with or without padding, one line or many; ignores ASCII
// whitespace (CR, LF, space, tab) anywhere. Returns nullopt on any other character or bad
// length.
std::optional<std::string> base64_decode(std::string_view text);

std::string base64url(std::string_view bytes);
std::optional<std::string> base64url_decode(std::string_view text);

std::string hex(std::string_view bytes);
// Accepts upper/lower hex, optionally with ':' separators (as `openssl x509 -fingerprint`).
std::optional<std::string> hex_decode(std::string_view text);

std::string sha256(std::string_view bytes);

}  // namespace mtls::encoding
