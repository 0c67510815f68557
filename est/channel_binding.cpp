#include "est/channel_binding.hpp"

#include "common/ossl_error.hpp"
#include "est/errors.hpp"

namespace mtls::est {

ChannelBinding channel_binding(SSL* ssl) {
    if (!ssl)
        throw Error(Error::Kind::pop_failed,
                    "proof-of-possession linking needs a TLS connection, there is none");
    if (!SSL_is_init_finished(ssl))
        throw Error(Error::Kind::pop_failed,
                    "proof-of-possession linking: the TLS handshake is not finished");
    ChannelBinding cb;
    const int version = SSL_version(ssl);
    if (version >= TLS1_3_VERSION) {
        static constexpr char label[] = "EXPORTER-Channel-Binding";
        unsigned char out[32];
        if (SSL_export_keying_material(ssl, out, sizeof out, label, sizeof label - 1, nullptr, 0,
                                       0) != 1)
            throw Error(Error::Kind::pop_failed,
                        "cannot export the tls-exporter channel binding: " + ossl::drain_errors());
        cb.type = "tls-exporter";
        cb.bytes.assign(reinterpret_cast<char*>(out), sizeof out);
        return cb;
    }
    if (version != TLS1_2_VERSION)
        throw Error(Error::Kind::pop_failed, "proof-of-possession linking needs TLS 1.2 or 1.3");
    unsigned char buf[EVP_MAX_MD_SIZE];
    const size_t n = SSL_session_reused(ssl) ? SSL_get_peer_finished(ssl, buf, sizeof buf)
                                             : SSL_get_finished(ssl, buf, sizeof buf);
    if (n == 0 || n > sizeof buf)
        throw Error(Error::Kind::pop_failed,
                    "the TLS 1.2 connection has no Finished message to bind to");
    cb.type = "tls-unique";
    cb.bytes.assign(reinterpret_cast<char*>(buf), n);
    return cb;
}

}  // namespace mtls::est
