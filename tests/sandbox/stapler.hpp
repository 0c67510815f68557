// OCSP stapling for the partner API (RFC 6066 §8 status_request): a thread fetches an OCSP
// response for the server certificate from the responder (as nginx or Apache do) every
// `period`, keeps the last successful one, and the TLS status callback sends it to clients
// that ask. Can be switched on and off at run time (POST /sandbox/revocation?staple=on|off).
#pragma once

#include "common/ossl.hpp"

#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

namespace mtls::sandbox {

class Stapler {
  public:
    Stapler(X509* leaf, X509* issuer, std::string url, std::chrono::milliseconds period,
            bool enabled);
    ~Stapler();
    Stapler(const Stapler&) = delete;
    Stapler& operator=(const Stapler&) = delete;

    // Installs the status callback on a server SSL_CTX (the Stapler must outlive it).
    void install(SSL_CTX* ctx);
    void set_enabled(bool on);
    // Fetches again now (e.g. after a revocation) and waits up to `wait` for it.
    void refresh_now(std::chrono::milliseconds wait = std::chrono::milliseconds(3000));
    nlohmann::json to_json() const;

  private:
    static int status_cb(SSL* ssl, void* arg);
    void loop();
    void fetch_once();

    ossl::X509Ptr leaf_, issuer_;
    std::string url_;
    std::chrono::milliseconds period_;
    std::atomic<bool> enabled_;
    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::string der_;
    std::uint64_t fetches_ = 0, failures_ = 0, generation_ = 0, sent_ = 0;
    std::string last_error_;
    bool wake_ = false, stop_ = false;
    std::thread thread_;
};

}  // namespace mtls::sandbox
