// TLS channel bindings for EST proof-of-possession linking (RFC 7030 §3.5): tls-unique
// (RFC 5929) on TLS 1.2, tls-exporter (RFC 9266) on TLS 1.3.
#pragma once

#include <openssl/ssl.h>

#include <string>

namespace mtls::est {

struct ChannelBinding {
    std::string type;   // "tls-unique" | "tls-exporter"
    std::string bytes;  // raw binding value
};

// The binding of the client side of a finished handshake. tls-unique is the first Finished
// message of the handshake: ours on a full handshake, the server's on a resumption.
// tls-exporter: SSL_export_keying_material("EXPORTER-Channel-Binding", no context, 32 bytes).
// Throws est::Error(pop_failed) when the connection has no usable binding.
ChannelBinding channel_binding(SSL* ssl);

}  // namespace mtls::est
