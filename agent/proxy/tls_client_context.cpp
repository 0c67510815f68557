#include "agent/proxy/tls_client_context.hpp"

#include "common/encoding.hpp"
#include "common/ossl_error.hpp"

#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <ctime>
#include <stdexcept>

namespace mtls::proxy {
namespace {

// Tickets kept per context: more than the connections that open at once, so a burst of new
// connections finds one each (TLS 1.3 servers send 2 per full handshake, 1 per resumption).
constexpr std::size_t kMaxSessions = 64;

int context_index() {
    static const int idx = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
    return idx;
}
void free_pin(void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
    delete static_cast<std::string*>(ptr);
}
int ssl_pin_index() {  // the peer's SPKI hash when a pin check failed, for the message
    static const int idx = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, &free_pin);
    return idx;
}

std::string spki_sha256(X509* cert) {
    unsigned char* der = nullptr;
    int len = i2d_PUBKEY(X509_get0_pubkey(cert), &der);
    if (len <= 0) return {};
    std::string out = encoding::sha256(
        std::string_view(reinterpret_cast<const char*>(der), static_cast<size_t>(len)));
    OPENSSL_free(der);
    return out;
}

// OpenSSL fills a certificate's extension cache (key ids, key usage, …) the first time a
// verification or chain build looks at it. Filled here, on the thread that builds the
// context, before any worker uses the certificates: afterwards the workers only read them.
void fill_extension_caches(SSL_CTX* ctx, const identity::IdentityPtr& id) {
    if (X509_STORE* store = SSL_CTX_get_cert_store(ctx)) {
        STACK_OF(X509_OBJECT)* objects = X509_STORE_get0_objects(store);
        for (int i = 0; i < sk_X509_OBJECT_num(objects); ++i)
            if (X509* cert = X509_OBJECT_get0_X509(sk_X509_OBJECT_value(objects, i)))
                X509_check_purpose(cert, -1, 0);
    }
    if (id) {
        X509_check_purpose(id->leaf(), -1, 0);
        for (const auto& ca : id->chain()) X509_check_purpose(ca.get(), -1, 0);
    }
}

ossl::SslCtx new_ctx() {
    ossl::SslCtx ctx(SSL_CTX_new(TLS_client_method()));
    if (!ctx) throw ossl::Error("TLS client context: SSL_CTX_new failed");
    return ctx;
}

}  // namespace

TlsClientContext::TlsClientContext(const config::Route& route, const UpstreamTarget& target,
                                   identity::IdentityPtr id)
    : ctx_(new_ctx().release()), identity_(std::move(id)), target_(target) {
    SSL_CTX* c = ctx_.native_handle();
    const std::string where = "route " + route.name + ": ";
    route_name_ = route.name;
    revocation_ = route.revocation;
    int min = route.tls_min_version == "1.2" ? TLS1_2_VERSION : TLS1_3_VERSION;
    if (SSL_CTX_set_min_proto_version(c, min) != 1 ||
        SSL_CTX_set_max_proto_version(c, TLS1_3_VERSION) != 1)
        throw ossl::Error(where + "cannot set the TLS versions");
    SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);

    // Server authentication: the route's CA bundle (or the system's), name check per SSL.
    if (!route.ca_file.empty()) {
        if (SSL_CTX_load_verify_locations(c, route.ca_file.c_str(), nullptr) != 1)
            throw ossl::Error(where + "cannot load ca_file " + route.ca_file +
                              " (PEM CA certificates of the partner's server)");
    } else if (SSL_CTX_set_default_verify_paths(c) != 1) {
        throw ossl::Error(where + "cannot load the system CA certificates");
    }
    for (const auto& pin : route.spki_pins) {
        auto raw = encoding::base64_decode(pin);
        if (!raw || raw->size() != 32)
            throw std::runtime_error(where + "spki_pins entry \"" + pin +
                                     "\" is not base64 of a SHA-256 hash");
        pins_.push_back(std::move(*raw));
    }
    SSL_CTX_set_verify(c, SSL_VERIFY_PEER, &TlsClientContext::on_verify);
    SSL_CTX_set_ex_data(c, context_index(), this);

    // Client authentication: the identity.
    if (identity_) {
        if (SSL_CTX_use_certificate(c, identity_->leaf()) != 1)
            throw ossl::Error(where + "the client certificate was refused");
        for (const auto& ca : identity_->chain())
            if (SSL_CTX_add1_chain_cert(c, ca.get()) != 1)
                throw ossl::Error(where + "a chain certificate was refused");
        if (SSL_CTX_use_PrivateKey(c, identity_->key()) != 1)
            throw ossl::Error(where + "the client key was refused");
        if (SSL_CTX_check_private_key(c) != 1)
            throw ossl::Error(where + "the client key does not match the certificate");
    }

    // Client session cache: we keep the sessions ourselves, per context (= per identity).
    SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(c, &TlsClientContext::on_new_session);
    fill_extension_caches(c, identity_);
}

bool TlsClientContext::prepare(SSL* ssl, std::string& error) {
    if (target_.host_is_ip) {
        if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), target_.host.c_str()) != 1) {
            error = "cannot set the IP address to verify: " + ossl::drain_errors();
            return false;
        }
    } else {
        if (SSL_set_tlsext_host_name(ssl, target_.host.c_str()) != 1 ||
            SSL_set1_host(ssl, target_.host.c_str()) != 1) {
            error = "cannot set SNI / host name to verify: " + ossl::drain_errors();
            return false;
        }
        SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    }
    if (revocation_ != config::RevocationPolicy::off &&
        SSL_set_tlsext_status_type(ssl, TLSEXT_STATUSTYPE_ocsp) != 1) {
        error = "cannot ask for OCSP stapling: " + ossl::drain_errors();
        return false;
    }
    // Newest usable session first, taken out of the cache: TLS 1.3 tickets are offered once
    // (RFC 8446 C.4; servers with replay protection resume each only once), so two
    // connections opening at once never share one; 1.2 sessions may be offered again.
    const auto now = static_cast<long>(std::time(nullptr));
    std::lock_guard lk(sessions_mu_);
    while (!sessions_.empty()) {
        ossl::SslSession s = std::move(sessions_.back());
        sessions_.pop_back();
        if (!SSL_SESSION_is_resumable(s.get())) continue;
        if (SSL_SESSION_get_time(s.get()) + SSL_SESSION_get_timeout(s.get()) <= now) continue;
        if (SSL_set_session(ssl, s.get()) != 1) {
            ossl::drain_errors();
            continue;
        }
        if (SSL_SESSION_get_protocol_version(s.get()) < TLS1_3_VERSION)
            sessions_.push_back(std::move(s));
        break;
    }
    return true;
}

std::string TlsClientContext::describe_failure(SSL* ssl, const std::string& transport_error) const {
    if (ssl != nullptr) {
        if (auto* pin = static_cast<std::string*>(SSL_get_ex_data(ssl, ssl_pin_index()))) {
            std::string got = encoding::base64(*pin);
            return "SPKI pin mismatch for " + target_.host + ": the server's key hashes to " + got +
                   ", which is not in the route's spki_pins";
        }
        long v = SSL_get_verify_result(ssl);
        if (v != X509_V_OK)
            return "certificate verify failed for " + target_.host + " (" +
                   X509_verify_cert_error_string(v) + ")";
    }
    std::string ossl_text = ossl::drain_errors();
    return "TLS handshake with " + target_.authority + " failed: " + transport_error +
           (ossl_text == "no OpenSSL error recorded" ? "" : " (" + ossl_text + ")");
}

int TlsClientContext::on_verify(int preverify_ok, X509_STORE_CTX* store) {
    if (!preverify_ok || X509_STORE_CTX_get_error_depth(store) != 0) return preverify_ok;
    auto* ssl =
        static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
    if (ssl == nullptr) return preverify_ok;
    auto* self =
        static_cast<TlsClientContext*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), context_index()));
    if (self == nullptr || self->pins_.empty()) return preverify_ok;
    std::string got = spki_sha256(X509_STORE_CTX_get_current_cert(store));
    for (const auto& pin : self->pins_)
        if (pin == got) return 1;
    delete static_cast<std::string*>(SSL_get_ex_data(ssl, ssl_pin_index()));
    SSL_set_ex_data(ssl, ssl_pin_index(), new std::string(got));
    X509_STORE_CTX_set_error(store, X509_V_ERR_APPLICATION_VERIFICATION);
    return 0;
}

int TlsClientContext::on_new_session(SSL* ssl, SSL_SESSION* session) {
    auto* self =
        static_cast<TlsClientContext*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), context_index()));
    if (self == nullptr) return 0;
    // A TLS 1.3 ticket is kept as a copy: `session` stays the connection's own session, and
    // OpenSSL marks that one not resumable when the connection is freed without a
    // close_notify sent (ssl_clear_bad_session) — which is how upstream connections end.
    // Kept by reference, the last ticket of every connection was lost that way, and every
    // resumed connection was followed by a full handshake (half of the new connections
    // resumed). A TLS 1.3 ticket does not depend on how the connection that brought it
    // ended; a TLS 1.2 session keeps OpenSSL's rule (not resumed after an unclean end).
    if (SSL_SESSION_get_protocol_version(session) >= TLS1_3_VERSION) {
        if (SSL_SESSION* copy = SSL_SESSION_dup(session)) {
            self->add_session(copy);
            return 0;  // OpenSSL keeps (and frees) the original
        }
        ossl::drain_errors();
    }
    self->add_session(session);
    return 1;  // we keep the reference
}

void TlsClientContext::add_session(SSL_SESSION* session) {
    std::lock_guard lk(sessions_mu_);
    sessions_.emplace_back(session);
    while (sessions_.size() > kMaxSessions) sessions_.pop_front();
}

}  // namespace mtls::proxy
