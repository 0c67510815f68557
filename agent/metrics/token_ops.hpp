// Latency and failures of operations on the PKCS#11 token (signatures: TLS handshakes with
// partners, CSR signing), fed by pkcs11::Token's sign observer, exported by metrics_text().
#pragma once

#include "agent/metrics/prometheus.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>

namespace mtls::metrics {

struct TokenOpMetrics {
    Histogram sign_seconds;
    std::atomic<std::uint64_t> sign_failures{0};

    void observe_sign(std::chrono::nanoseconds elapsed, bool ok) {
        sign_seconds.observe(std::chrono::duration<double>(elapsed).count());
        if (!ok) sign_failures.fetch_add(1, std::memory_order_relaxed);
    }
};

}  // namespace mtls::metrics
