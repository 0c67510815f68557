// Prometheus text exposition format 0.0.4: a writer for metric families, and a lock-free
// histogram with fixed buckets for latencies.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mtls::metrics {

using Labels = std::vector<std::pair<std::string, std::string>>;

class Writer {
  public:
    // Starts a family: "# HELP" and "# TYPE" lines. type: counter | gauge | histogram.
    void family(std::string_view name, std::string_view help, std::string_view type);
    void sample(std::string_view name, const Labels& labels, double value);
    const std::string& text() const { return out_; }

  private:
    std::string out_;
};

// Latency histogram in seconds, buckets from 0.5 ms to 10 s.
class Histogram {
  public:
    static constexpr std::array<double, 12> kBounds{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                    0.05,   0.1,   0.25,   0.5,   1.0,  10.0};
    void observe(double seconds);
    // Writes the _bucket, _sum and _count samples (the family line is the caller's).
    void write(Writer& w, std::string_view name, const Labels& labels) const;

  private:
    std::array<std::atomic<std::uint64_t>, kBounds.size() + 1> buckets_{};
    std::atomic<std::uint64_t> count_{0};
    std::atomic<std::uint64_t> sum_us_{0};
};

}  // namespace mtls::metrics
