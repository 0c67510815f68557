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

// A number as the exposition format writes it ("+Inf", "0.005", "12").
std::string format_number(double v);

// Bucket bounds in seconds.
// Signatures on the PKCS#11 token: 0.5 ms to 10 s.
inline constexpr std::array<double, 12> kSignBounds{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                    0.05,   0.1,   0.25,   0.5,   1.0,  10.0};
// Requests through the proxy (an API call to a partner): 1 ms to 60 s.
inline constexpr std::array<double, 15> kRequestBounds{
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0};

// Lock-free latency histogram with fixed buckets: observe() is a few relaxed atomic adds, no
// lock, no allocation (fit for the proxy's request path).
template <const auto& Bounds>
class BucketHistogram {
  public:
    static constexpr const auto& kBounds = Bounds;
    void observe(double seconds) {
        std::size_t i = 0;
        while (i < kBounds.size() && seconds > kBounds[i]) ++i;
        buckets_[i].fetch_add(1, std::memory_order_relaxed);
        count_.fetch_add(1, std::memory_order_relaxed);
        sum_us_.fetch_add(seconds > 0 ? static_cast<std::uint64_t>(seconds * 1e6) : 0,
                          std::memory_order_relaxed);
    }
    // Writes the _bucket, _sum and _count samples (the family line is the caller's).
    void write(Writer& w, std::string_view name, const Labels& labels) const {
        std::uint64_t cumulative = 0;
        std::string bucket = std::string(name) + "_bucket";
        for (std::size_t i = 0; i <= kBounds.size(); ++i) {
            cumulative += buckets_[i].load(std::memory_order_relaxed);
            Labels l = labels;
            l.emplace_back("le", i < kBounds.size() ? format_number(kBounds[i]) : "+Inf");
            w.sample(bucket, l, static_cast<double>(cumulative));
        }
        w.sample(std::string(name) + "_sum", labels,
                 static_cast<double>(sum_us_.load(std::memory_order_relaxed)) / 1e6);
        w.sample(std::string(name) + "_count", labels,
                 static_cast<double>(count_.load(std::memory_order_relaxed)));
    }

  private:
    std::array<std::atomic<std::uint64_t>, Bounds.size() + 1> buckets_{};
    std::atomic<std::uint64_t> count_{0};
    std::atomic<std::uint64_t> sum_us_{0};
};

using Histogram = BucketHistogram<kSignBounds>;
using RequestHistogram = BucketHistogram<kRequestBounds>;

}  // namespace mtls::metrics
