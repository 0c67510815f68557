// One PKCS#11 token: found by its RFC 7512 URI in a module, logged in with a PIN from a
// PinSource, and a pool of sessions that survives token or module resets.
//
//   auto token = pkcs11::Token::open({.module_path = "/usr/lib/softhsm/libsofthsm2.so",
//                                     .token_uri = "pkcs11:token=mtls-agent",
//                                     .pin = pkcs11::PinSource::file("/etc/mtls-agent/pin")});
//   pkcs11::KeyInfo k = token->generate_key(config::KeyType::ec_p256, "mtls-agent-1");
//
// Sessions: every operation checks a session out of the pool for its own use (a session is
// never used by two threads at once) and gives it back. The module is called concurrently
// (it was initialised with CKF_OS_LOCKING_OK). Login state is per application and token in
// PKCS#11, so one C_Login serves every session; it is done once, lazily, and again after a
// reset. When a call fails because the session, the login or the token went away
// (CKR_SESSION_HANDLE_INVALID, CKR_SESSION_CLOSED, CKR_USER_NOT_LOGGED_IN, CKR_DEVICE_REMOVED,
// CKR_TOKEN_NOT_PRESENT, …) the pool is dropped, the slot looked up again if needed, and the
// operation retried once on a fresh, logged-in session; a second failure is thrown.
//
// Thread-safety: every public member may be called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/ossl.hpp"
#include "config/config.hpp"
#include "pkcs11/errors.hpp"
#include "pkcs11/module.hpp"
#include "pkcs11/pin.hpp"
#include "pkcs11/uri.hpp"

namespace mtls::pkcs11 {

struct TokenOptions {
    std::string module_path;  // the PKCS#11 module (.so)
    std::string token_uri;    // pkcs11: URI selecting the token (object attributes ignored)
    PinSource pin;            // where the user PIN comes from
    std::size_t max_idle_sessions = 8;

    static TokenOptions from_config(const config::Pkcs11& c);
};

// A key pair on the token (private + public key objects, and possibly a certificate, all with
// the same CKA_ID).
struct KeyInfo {
    std::string id;     // CKA_ID, raw bytes (16 random bytes for keys we generate)
    std::string label;  // CKA_LABEL
    config::KeyType type = config::KeyType::ec_p256;
    std::string uri;  // pkcs11: URI of the private key (token attributes + id + type=private)

    std::string id_hex() const;  // lower-case hex of id
};

// The key of a signing operation: its CKA_ID and the cached object handle, found again by
// id when the handle goes stale.
struct PrivateKeyRef {
    std::string id;
    std::atomic<CK_OBJECT_HANDLE> handle{CK_INVALID_HANDLE};
    explicit PrivateKeyRef(std::string key_id) : id(std::move(key_id)) {}
};

class Token {
  public:
    // Loads the module, finds the token, checks that the PIN source is readable (the login
    // itself happens with the first operation that needs it, and is checked here too).
    // Throws pkcs11::Error: module missing, token not found (listing the tokens that exist),
    // wrong PIN (CKR_PIN_INCORRECT, naming the PIN source), …
    static std::shared_ptr<Token> open(const TokenOptions& opts);

    ~Token();
    Token(const Token&) = delete;
    Token& operator=(const Token&) = delete;

    const std::string& label() const noexcept { return label_; }
    const std::string& serial() const noexcept { return serial_; }
    // `token "mtls-agent" (serial 5e1f…, module /usr/lib/softhsm/libsofthsm2.so)`
    const std::string& description() const noexcept { return description_; }
    // pkcs11:token=…;manufacturer=…;serial=…;model=… (identifies this token exactly)
    const std::string& token_uri() const noexcept { return token_uri_; }
    // pkcs11: URI of the private key with this CKA_ID.
    std::string key_uri(std::string_view id) const;

    // --- keys (keys.cpp) ---
    // Generates a key pair on the token: private key CKA_TOKEN, CKA_PRIVATE, CKA_SENSITIVE,
    // not CKA_EXTRACTABLE, CKA_SIGN; public key CKA_VERIFY (not on tpm2-pkcs11, which ties it
    // to the TPM key's decrypt right); both with `label` and CKA_ID `id`
    // (raw bytes; a random 16-byte one when empty).
    KeyInfo generate_key(config::KeyType type, const std::string& label, std::string_view id = {});
    // Private keys of a supported type (EC P-256/P-384, RSA 2048/3072) on the token.
    std::vector<KeyInfo> list_keys();
    std::optional<KeyInfo> find_key(std::string_view id);
    std::vector<KeyInfo> find_keys_by_label(std::string_view label);
    // Every object the session sees (public, and private ones: logged in), of any class and
    // however incomplete (what a generation interrupted by a crash may leave): CKA_ID and
    // CKA_LABEL ("" when absent) and CKA_CLASS.
    struct ObjectInfo {
        std::string id, label;
        CK_OBJECT_CLASS cls = CKO_DATA;
    };
    std::vector<ObjectInfo> list_objects();
    // Destroys every object (private key, public key, certificates) with this CKA_ID; returns
    // how many were destroyed.
    std::size_t destroy_key(std::string_view id);
    // destroy_key() for every private key with this CKA_LABEL; returns objects destroyed.
    std::size_t destroy_keys_by_label(std::string_view label);
    // The public half as a plain OpenSSL key (default library context), from the public key
    // object (or, failing that, the certificate) with this CKA_ID. Throws if there is none.
    ossl::PKey public_key(std::string_view id);
    // Stores a DER X.509 certificate as a token object (CKO_CERTIFICATE, CKC_X_509) with the
    // key's CKA_ID, replacing certificates with the same id.
    void store_certificate(std::string_view id, std::string_view der, const std::string& label);
    std::optional<std::string> find_certificate(std::string_view id);

    // --- signing (used by the provider) ---
    // C_SignInit + C_Sign with the private key `key`, returning at most max_sig bytes. When
    // the key is gone from the token (its handle is invalid and no private key with its
    // CKA_ID is found again, logged in) it throws KeyGone and tells the key-gone observer.
    std::string sign(PrivateKeyRef& key, const CK_MECHANISM& mech,
                     std::span<const unsigned char> data, std::size_t max_sig);
    // Called after every sign() with its duration and whether it succeeded (for the
    // token-operation latency metrics). May be set at any time; runs on the signing thread.
    using SignObserver = std::function<void(std::chrono::nanoseconds elapsed, bool ok)>;
    void set_sign_observer(SignObserver observer);
    // Called with the CKA_ID (raw bytes) of a private key that a signature needed and the
    // token no longer has. Runs on the signing thread (a TLS handshake): keep it short.
    using KeyGoneObserver = std::function<void(const std::string& key_id)>;
    void set_key_gone_observer(KeyGoneObserver observer);

    // --- low level ---
    CK_FUNCTION_LIST* fn() const noexcept { return module_->fn(); }
    CK_SLOT_ID slot() const noexcept { return slot_.load(); }
    const Module& module() const noexcept { return *module_; }
    // Throws pkcs11::Error "<call> on <description> failed: CKR_… [(about)]" unless CKR_OK.
    void check(CK_RV rv, const char* call, std::string_view about = {}) const;

    // Runs f(session) on a pooled, logged-in session; retries once on a fresh session when
    // f throws a pkcs11::Error whose rv is_session_lost(). Do not nest.
    template <class F>
    auto with_session(F&& f) -> decltype(f(CK_SESSION_HANDLE{}));

    // Sessions recovered so far (for tests and metrics).
    std::uint64_t recoveries() const noexcept { return recoveries_.load(); }

  private:
    class Lease;
    Token() = default;
    Lease checkout(std::uint64_t& epoch_out);
    void give_back(CK_SESSION_HANDLE h, std::uint64_t epoch, bool discard) noexcept;
    void login(CK_SESSION_HANDLE h);
    void recover(std::uint64_t seen_epoch, CK_RV why);
    CK_SLOT_ID find_slot() const;
    std::string sign_on_token(PrivateKeyRef& key, const CK_MECHANISM& mech,
                              std::span<const unsigned char> data, std::size_t max_sig);

    std::shared_ptr<Module> module_;
    Uri uri_;
    PinSource pin_;
    std::size_t max_idle_ = 8;
    std::atomic<CK_SLOT_ID> slot_{0};
    std::string label_, serial_, description_, token_uri_;

    std::mutex mu_;  // guards idle_, epoch_
    std::vector<CK_SESSION_HANDLE> idle_;
    std::uint64_t epoch_ = 0;
    std::mutex login_mu_;
    std::atomic<bool> logged_in_{false};
    std::atomic<std::uint64_t> recoveries_{0};
    std::mutex observer_mu_;
    std::shared_ptr<const SignObserver> sign_observer_;
    std::shared_ptr<const KeyGoneObserver> key_gone_observer_;
};

// A checked-out session; returns itself to the pool on destruction.
class Token::Lease {
  public:
    Lease(Token* t, CK_SESSION_HANDLE h, std::uint64_t epoch) : t_(t), h_(h), epoch_(epoch) {}
    Lease(Lease&& o) noexcept : t_(o.t_), h_(o.h_), epoch_(o.epoch_), discard_(o.discard_) {
        o.t_ = nullptr;
    }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    Lease& operator=(Lease&&) = delete;
    ~Lease() {
        if (t_) t_->give_back(h_, epoch_, discard_);
    }
    CK_SESSION_HANDLE handle() const noexcept { return h_; }
    std::uint64_t epoch() const noexcept { return epoch_; }
    void discard() noexcept { discard_ = true; }

  private:
    Token* t_;
    CK_SESSION_HANDLE h_;
    std::uint64_t epoch_;
    bool discard_ = false;
};

template <class F>
auto Token::with_session(F&& f) -> decltype(f(CK_SESSION_HANDLE{})) {
    std::unique_lock<std::mutex> serial_lock;  // only for modules that cannot lock themselves
    if (module_->serialized()) serial_lock = std::unique_lock(module_->call_lock());
    for (int attempt = 0;; ++attempt) {
        std::uint64_t epoch = 0;
        try {
            {
                Lease lease = checkout(epoch);
                try {
                    return f(lease.handle());
                } catch (const Error& e) {
                    if (is_session_lost(e.rv()) && e.rv() != CKR_USER_NOT_LOGGED_IN)
                        lease.discard();
                    throw;
                }
            }
        } catch (const Error& e) {
            if (attempt > 0 || !is_session_lost(e.rv())) throw;
            recover(epoch, e.rv());
        }
    }
}

}  // namespace mtls::pkcs11
