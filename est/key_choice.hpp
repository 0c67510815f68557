// Which key type to generate for an enrollment, from [key] (type, or type = "from-server" /
// types = […]) and the key the EST server's csrattrs ask for (RFC 7030 §4.5.2: id-ecPublicKey
// with a curve, rsaEncryption with a size). Decided before a key is generated, so a server
// that wants a key we may not make fails early with a clear error instead of a CSR it rejects.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"
#include "est/csrattrs.hpp"

namespace mtls::est {

// Whether a key of type `t` is one the server asks for (true when it asks for none).
bool key_type_satisfies(const CsrAttributes& attrs, config::KeyType t);

// The types [key] allows: {type} when fixed; types = […] in order; with type = "from-server"
// and no list, every type the token makes (ec-p256 first).
std::vector<config::KeyType> acceptable_key_types(const config::KeyPolicy& policy);

// The type to generate: the configured (default) type when the server asks for no key or
// accepts it, else the first acceptable type the server asks for (in the server's order).
// Throws est::Error(config) naming what the server asked for and the key to change
// (key.type / key.types).
config::KeyType choose_key_type(const CsrAttributes& attrs, const config::KeyPolicy& policy);

// "ec-p256" -> KeyType (as persisted in identity.json); nullopt for anything else.
std::optional<config::KeyType> key_type_from_name(std::string_view name);

}  // namespace mtls::est
