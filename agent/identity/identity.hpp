// Identity: one immutable snapshot of this host's client identity — the leaf certificate,
// its chain, the private key (an EVP_PKEY: a file key or a token key behind our OpenSSL
// provider; only EVP APIs are used on it), and facts derived from them once.
// IdentityStore: holds the current snapshot; publish() swaps it, current() is cheap.
// A connection keeps the snapshot it started with, so a rotation never breaks a request in
// flight: the old key and certificate live until the last holder lets go.
#pragma once

#include "common/ossl.hpp"

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace mtls::identity {

class Identity {
  public:
    using Clock = std::chrono::system_clock;

    // Takes ownership of the parts. Throws std::runtime_error (ossl::Error) when the key
    // does not match the leaf certificate or a time field cannot be read.
    // key_id: how the key is named where it lives (PKCS#11 CKA_ID in hex for a token key);
    // empty: derived as hex of the first 16 bytes of SHA-256 over the SubjectPublicKeyInfo.
    static std::shared_ptr<const Identity> create(ossl::X509Ptr leaf,
                                                  std::vector<ossl::X509Ptr> chain, ossl::PKey key,
                                                  std::string key_id, std::uint64_t generation);

    // Convenience for tests and file-based setups: PEM certificate file (leaf first, then the
    // chain) and a PEM private key file.
    static std::shared_ptr<const Identity> from_pem_files(const std::string& cert_chain_file,
                                                          const std::string& key_file,
                                                          std::uint64_t generation);

    X509* leaf() const { return leaf_.get(); }
    const std::vector<ossl::X509Ptr>& chain() const { return chain_; }  // without the leaf
    EVP_PKEY* key() const { return key_.get(); }
    const std::string& key_id() const { return key_id_; }
    const std::string& thumbprint_sha256() const { return thumb_raw_; }  // 32 raw bytes
    const std::string& x5t_s256() const { return thumb_b64url_; }        // RFC 8705 cnf.x5t#S256
    Clock::time_point not_before() const { return not_before_; }
    Clock::time_point not_after() const { return not_after_; }
    std::uint64_t generation() const { return generation_; }
    const std::string& subject() const { return subject_; }  // one-line RFC 2253 form

    bool valid_at(Clock::time_point t) const { return t >= not_before_ && t < not_after_; }

    Identity(const Identity&) = delete;
    Identity& operator=(const Identity&) = delete;

  private:
    Identity() = default;
    ossl::X509Ptr leaf_;
    std::vector<ossl::X509Ptr> chain_;
    ossl::PKey key_;
    std::string key_id_;
    std::string thumb_raw_;
    std::string thumb_b64url_;
    std::string subject_;
    Clock::time_point not_before_{};
    Clock::time_point not_after_{};
    std::uint64_t generation_ = 0;
};

using IdentityPtr = std::shared_ptr<const Identity>;

}  // namespace mtls::identity
