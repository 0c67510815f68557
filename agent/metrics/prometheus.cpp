#include "agent/metrics/prometheus.hpp"

#include <cmath>
#include <cstdio>

namespace mtls::metrics {
namespace {

void append_escaped(std::string& out, std::string_view v) {
    for (char c : v) {
        if (c == '\\')
            out += "\\\\";
        else if (c == '"')
            out += "\\\"";
        else if (c == '\n')
            out += "\\n";
        else
            out += c;
    }
}

std::string number(double v) {
    if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
    if (std::isnan(v)) return "NaN";
    char buf[64];
    if (v == std::floor(v) && std::fabs(v) < 1e15)
        std::snprintf(buf, sizeof buf, "%.0f", v);
    else
        std::snprintf(buf, sizeof buf, "%.6g", v);
    return buf;
}

}  // namespace

void Writer::family(std::string_view name, std::string_view help, std::string_view type) {
    out_ += "# HELP ";
    out_ += name;
    out_ += ' ';
    out_ += help;
    out_ += "\n# TYPE ";
    out_ += name;
    out_ += ' ';
    out_ += type;
    out_ += '\n';
}

void Writer::sample(std::string_view name, const Labels& labels, double value) {
    out_ += name;
    if (!labels.empty()) {
        out_ += '{';
        bool first = true;
        for (const auto& [k, v] : labels) {
            if (!first) out_ += ',';
            first = false;
            out_ += k;
            out_ += "=\"";
            append_escaped(out_, v);
            out_ += '"';
        }
        out_ += '}';
    }
    out_ += ' ';
    out_ += number(value);
    out_ += '\n';
}

void Histogram::observe(double seconds) {
    std::size_t i = 0;
    while (i < kBounds.size() && seconds > kBounds[i]) ++i;
    buckets_[i].fetch_add(1, std::memory_order_relaxed);
    count_.fetch_add(1, std::memory_order_relaxed);
    sum_us_.fetch_add(static_cast<std::uint64_t>(seconds * 1e6), std::memory_order_relaxed);
}

void Histogram::write(Writer& w, std::string_view name, const Labels& labels) const {
    std::uint64_t cumulative = 0;
    std::string bucket = std::string(name) + "_bucket";
    for (std::size_t i = 0; i <= kBounds.size(); ++i) {
        cumulative += buckets_[i].load(std::memory_order_relaxed);
        Labels l = labels;
        l.emplace_back("le", i < kBounds.size() ? number(kBounds[i]) : "+Inf");
        w.sample(bucket, l, static_cast<double>(cumulative));
    }
    w.sample(std::string(name) + "_sum", labels,
             static_cast<double>(sum_us_.load(std::memory_order_relaxed)) / 1e6);
    w.sample(std::string(name) + "_count", labels,
             static_cast<double>(count_.load(std::memory_order_relaxed)));
}

}  // namespace mtls::metrics
