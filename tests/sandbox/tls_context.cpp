#include "tests/sandbox/tls_context.hpp"

#include "common/ossl_error.hpp"

namespace mtls::sandbox {
namespace {

int accept_any_cert(int, X509_STORE_CTX*) {
    return 1;
}

}  // namespace

ossl::SslCtx make_server_ctx(const ServerTlsConfig& cfg) {
    ossl::SslCtx ctx(SSL_CTX_new(TLS_server_method()));
    if (!ctx) throw ossl::Error("SSL_CTX_new failed");
    SSL_CTX* c = ctx.get();
    SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
    SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    if (SSL_CTX_use_certificate(c, cfg.chain.at(0)) != 1 ||
        SSL_CTX_use_PrivateKey(c, cfg.key) != 1 || SSL_CTX_check_private_key(c) != 1)
        throw ossl::Error("cannot load the sandbox server certificate");
    for (size_t i = 1; i < cfg.chain.size(); ++i)
        if (SSL_CTX_add1_chain_cert(c, cfg.chain[i]) != 1)
            throw ossl::Error("cannot add the server chain certificate");

    // Resumption: tickets (default on) plus the server-side session cache; the session id
    // context is required for resuming sessions that carried a client certificate.
    if (cfg.tls12_only) {
        SSL_CTX_set_max_proto_version(c, TLS1_2_VERSION);
        SSL_CTX_set_options(c, SSL_OP_NO_TICKET);  // resumption by session ID only
    }
    // TLS 1.3 with SSL_OP_NO_TICKET: stateful tickets in the session cache. OpenSSL's
    // anti-replay, which resumes each of them only once, is on when early data is allowed
    // (none arrives: our clients send none; 0-RTT data would be refused by the HTTP layer
    // anyway, it never calls SSL_read_early_data).
    if (cfg.single_use_tickets) {
        SSL_CTX_set_options(c, SSL_OP_NO_TICKET);
        if (SSL_CTX_set_max_early_data(c, 16384) != 1)
            throw ossl::Error("SSL_CTX_set_max_early_data failed");
    }
    if (cfg.no_tickets) {
        SSL_CTX_set_options(c, SSL_OP_NO_TICKET);
        if (SSL_CTX_set_num_tickets(c, 0) != 1) throw ossl::Error("SSL_CTX_set_num_tickets failed");
    }
    SSL_CTX_set_session_cache_mode(c, cfg.no_tickets ? SSL_SESS_CACHE_OFF : SSL_SESS_CACHE_SERVER);
    const auto& sid = cfg.session_id_context;
    if (SSL_CTX_set_session_id_context(c, reinterpret_cast<const unsigned char*>(sid.data()),
                                       static_cast<unsigned>(sid.size())) != 1)
        throw ossl::Error("SSL_CTX_set_session_id_context failed");

    if (cfg.client_certs == ClientCerts::verify) {
        if (cfg.trusted) SSL_CTX_set1_cert_store(c, cfg.trusted);
        SSL_CTX_set_verify(c, SSL_VERIFY_PEER, nullptr);
    } else {
        SSL_CTX_set_verify(c, SSL_VERIFY_PEER, accept_any_cert);
    }
    for (X509* ca : cfg.client_ca_names)
        if (SSL_CTX_add_client_CA(c, ca) != 1) throw ossl::Error("SSL_CTX_add_client_CA failed");
    return ctx;
}

}  // namespace mtls::sandbox
