// Test helper: OpenSSL's own OCSP responder (`openssl ocsp -index … -port …`, a real,
// independent implementation) for the sandbox CA, behind a small counting TCP relay.
//
//   OcspResponder ocsp;                                  // binds the public port now
//   SandboxProcess sbx(dir, {"--revocation", "--ocsp-url", ocsp.url()});
//   ocsp.start(sbx.info(), dir.path());                  // openssl ocsp on the CA's index
//   … ocsp.requests() …                                  // connections relayed so far
//   ocsp.down(); / ocsp.up();                            // refused / answering again
//
// The public port (url(), what certificates carry) is bound by the relay for the helper's
// whole life, so it can go into certificates before the CA exists. Each connection is one
// OCSP request from the agent's fetcher (it opens a fresh connection per request).
// direct_url() is openssl's own port, for the sandbox's stapler (so its fetches are not
// counted). `openssl ocsp` (3.0) re-reads index.txt when the file changed, but checks only
// after serving a request, before it accepts the next: the request right after a revocation
// still gets the old answer. reload() sends one uncounted request straight to it, so the
// next one sees the change (call it after every /sandbox/revoke).
#pragma once

#include "tests/support/sandbox_process.hpp"

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace mtls::test {

class OcspResponder {
  public:
    OcspResponder();
    ~OcspResponder();
    OcspResponder(const OcspResponder&) = delete;
    OcspResponder& operator=(const OcspResponder&) = delete;

    std::string url() const;         // http://127.0.0.1:<relay port>/
    std::string direct_url() const;  // http://127.0.0.1:<openssl port>/
    std::uint16_t port() const { return public_port_; }

    // Starts `openssl ocsp` for the issuing CA of a sandbox started with --revocation
    // (info["revocation"]); responses carry nextUpdate = now + next_minutes. Waits until it
    // accepts connections.
    void start(const nlohmann::json& sandbox_info, const std::filesystem::path& log_dir,
               int next_minutes = 1);
    // Makes openssl re-read the index now (see above).
    void reload();
    // Connections relayed to the responder so far.
    std::uint64_t requests() const { return requests_.load(); }
    // The responder down: the relay refuses connections (closed listening socket).
    void down();
    void up();

  private:
    void relay_loop();
    void relay_one(int client);

    int listen_fd_ = -1;
    std::uint16_t public_port_ = 0, backend_port_ = 0;
    std::atomic<bool> stopping_{false};
    std::atomic<std::uint64_t> requests_{0};
    std::mutex mu_;
    std::condition_variable up_;  // listen_fd_ became valid, or stopping_
    std::vector<std::thread> conns_;
    std::thread acceptor_;
    std::unique_ptr<ChildProcess> openssl_;
    std::string issuer_file_, cert_file_;
};

}  // namespace mtls::test
