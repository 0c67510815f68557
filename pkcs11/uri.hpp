// RFC 7512 `pkcs11:` URIs: which token, and which object on it.
//
//   pkcs11:token=mtls-agent;serial=5e1f0c2a;object=host-key;id=%01%02;type=private
//
// Path attributes are separated by ';', query attributes (after '?') by '&'; values are
// percent-decoded. Unknown standard attributes and duplicates are errors; vendor attributes
// ("x-…") are ignored. `pin-value` and `pin-source` are refused: PINs come from the agent's
// configuration (a file, an environment variable or a systemd credential), never from a URI
// that may end up in logs. Error messages never repeat attribute values of refused attributes.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace mtls::pkcs11 {

struct Uri {
    // Token selection.
    std::optional<std::string> token;         // CK_TOKEN_INFO.label
    std::optional<std::string> manufacturer;  // CK_TOKEN_INFO.manufacturerID
    std::optional<std::string> serial;        // CK_TOKEN_INFO.serialNumber
    std::optional<std::string> model;         // CK_TOKEN_INFO.model
    std::optional<std::string> slot_description;
    std::optional<std::string> slot_manufacturer;
    std::optional<unsigned long> slot_id;
    std::optional<std::string> library_manufacturer;
    std::optional<std::string> library_description;
    // Object selection.
    std::optional<std::string> object;  // CKA_LABEL
    std::optional<std::string> id;      // CKA_ID, raw bytes
    std::optional<std::string> type;    // "private" | "public" | "cert" | "secret-key" | "data"
    // Query attributes that are accepted (and not used by the agent, which takes the module
    // from its configuration).
    std::optional<std::string> module_name;
    std::optional<std::string> module_path;

    // Throws pkcs11::Error("invalid pkcs11: URI …: <reason>").
    static Uri parse(std::string_view text);

    // The token-selecting part only, e.g. "pkcs11:token=mtls-agent;serial=5e1f0c2a".
    std::string token_part() const;
    // The whole URI (path attributes only), percent-encoded per RFC 7512.
    std::string to_string() const;
};

// RFC 7512 percent-encoding: everything but unreserved characters (and, for readability,
// nothing else) is %XX-encoded.
std::string pct_encode(std::string_view bytes);

}  // namespace mtls::pkcs11
