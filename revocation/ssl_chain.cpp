#include "revocation/ssl_chain.hpp"

#include <openssl/err.h>

#include "common/ossl.hpp"
#include "revocation/cache.hpp"

namespace mtls::revocation {

std::vector<std::shared_ptr<X509>> verified_chain(SSL* ssl) {
    std::vector<std::shared_ptr<X509>> out;
    if (!ssl) return out;
    STACK_OF(X509)* chain = SSL_get0_verified_chain(ssl);
    if (chain && sk_X509_num(chain) > 0) {
        for (int i = 0; i < sk_X509_num(chain); ++i)
            out.push_back(share_x509(sk_X509_value(chain, i)));
        return out;
    }
    // Resumed: build it again (the handshake verified it when the session was made).
    ossl::X509Ptr leaf(SSL_get1_peer_certificate(ssl));
    SSL_CTX* ctx = SSL_get_SSL_CTX(ssl);
    if (!leaf || !ctx) return out;
    ossl::X509StoreCtxPtr vctx(X509_STORE_CTX_new());
    if (!vctx || X509_STORE_CTX_init(vctx.get(), SSL_CTX_get_cert_store(ctx), leaf.get(),
                                     SSL_get_peer_cert_chain(ssl)) != 1) {
        ERR_clear_error();
        return out;
    }
    if (X509_verify_cert(vctx.get()) == 1) {
        STACK_OF(X509)* built = X509_STORE_CTX_get0_chain(vctx.get());
        for (int i = 0; i < sk_X509_num(built); ++i)
            out.push_back(share_x509(sk_X509_value(built, i)));
    }
    ERR_clear_error();
    return out;
}

std::string stapled_response(SSL* ssl) {
    const unsigned char* p = nullptr;
    const long n = ssl ? SSL_get_tlsext_status_ocsp_resp(ssl, &p) : -1;
    if (n <= 0 || !p) return {};
    return std::string(reinterpret_cast<const char*>(p), static_cast<std::size_t>(n));
}

std::vector<X509*> raw_chain(const std::vector<std::shared_ptr<X509>>& chain) {
    std::vector<X509*> out;
    for (const auto& c : chain) out.push_back(c.get());
    return out;
}

}  // namespace mtls::revocation
