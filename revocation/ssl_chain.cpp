#include "revocation/ssl_chain.hpp"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <mutex>
#include <optional>
#include <unordered_map>

#include "common/ossl.hpp"
#include "revocation/cache.hpp"

namespace mtls::revocation {
namespace {

using SharedChain = std::vector<std::shared_ptr<X509>>;

// Verified chains by the SHA-1 fingerprint of their leaf (OpenSSL caches it in the X509: no
// hashing per lookup). Filled only from chains a handshake or X509_verify_cert verified.
class VerifiedChains {
  public:
    static VerifiedChains& instance() {
        static VerifiedChains chains;
        return chains;
    }
    static std::optional<std::string> key(X509* leaf) {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int n = 0;
        if (X509_digest(leaf, EVP_sha1(), md, &n) != 1) {
            ERR_clear_error();
            return std::nullopt;
        }
        return std::string(reinterpret_cast<const char*>(md), n);
    }
    void remember(const std::string& k, const SharedChain& chain) {
        std::lock_guard lk(mu_);
        if (chains_.size() >= kMaxChains && !chains_.contains(k)) chains_.clear();
        chains_[k] = chain;
    }
    SharedChain find(const std::string& k) const {
        std::lock_guard lk(mu_);
        auto it = chains_.find(k);
        return it == chains_.end() ? SharedChain{} : it->second;
    }

  private:
    static constexpr std::size_t kMaxChains = 1024;
    mutable std::mutex mu_;
    std::unordered_map<std::string, SharedChain> chains_;
};

}  // namespace

std::vector<std::shared_ptr<X509>> verified_chain(SSL* ssl) {
    std::vector<std::shared_ptr<X509>> out;
    if (!ssl) return out;
    STACK_OF(X509)* chain = SSL_get0_verified_chain(ssl);
    if (chain && sk_X509_num(chain) > 0) {
        for (int i = 0; i < sk_X509_num(chain); ++i)
            out.push_back(share_x509(sk_X509_value(chain, i)));
        if (auto k = VerifiedChains::key(out.front().get()))
            VerifiedChains::instance().remember(*k, out);
        return out;
    }
    // Resumed: the chain this leaf had when a handshake verified it, else built again.
    X509* peer = SSL_get0_peer_certificate(ssl);
    const auto k = peer ? VerifiedChains::key(peer) : std::nullopt;
    if (k)
        if (auto known = VerifiedChains::instance().find(*k); !known.empty()) return known;
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
        if (k && !out.empty()) VerifiedChains::instance().remember(*k, out);
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
