// Test helper: continuous plain-HTTP traffic into the agent's loopback proxy from N
// keep-alive client connections (one thread each), for the rotation-under-load and fault
// tests. Every answer is checked by a caller-supplied predicate; failures are kept (with
// the first few bodies) so a test can say exactly what went wrong.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace mtls::test {

struct LoadReport {
    std::uint64_t sent = 0;    // requests written
    std::uint64_t ok = 0;      // answered and accepted by the check
    std::uint64_t failed = 0;  // no answer, a connection error, or the check said no
    std::uint64_t reconnects = 0;
    std::vector<std::string> samples;  // the first failures, described
};

class HttpLoad {
  public:
    // Returns "" when the answer (status, body) is acceptable, else why not.
    using Check = std::function<std::string(unsigned status, const std::string& body)>;

    // A check that accepts any answer with this status.
    static Check status_is(unsigned want) {
        return [want](unsigned status, const std::string&) {
            return status == want ? std::string() : "status " + std::to_string(status);
        };
    }

    // Starts `connections` threads sending GET `target` to 127.0.0.1:port until stop().
    HttpLoad(std::uint16_t port, std::string target, int connections, Check check);
    ~HttpLoad();  // stop()
    HttpLoad(const HttpLoad&) = delete;
    HttpLoad& operator=(const HttpLoad&) = delete;

    LoadReport stop();
    std::uint64_t ok_so_far() const { return ok_.load(); }

  private:
    void worker();
    void fail(std::string why);

    std::uint16_t port_;
    std::string target_;
    Check check_;
    std::atomic<bool> stop_{false};
    std::atomic<std::uint64_t> sent_{0}, ok_{0}, failed_{0}, reconnects_{0};
    std::mutex mu_;
    std::vector<std::string> samples_;
    std::vector<std::thread> threads_;
    bool stopped_ = false;
    LoadReport report_;
};

}  // namespace mtls::test
