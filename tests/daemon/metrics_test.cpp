#include "agent/metrics/prometheus.hpp"

#include <gtest/gtest.h>

using namespace mtls::metrics;

TEST(Prometheus, WritesFamiliesSamplesAndEscapesLabels) {
    Writer w;
    w.family("mtls_requests_total", "Requests by route and status class.", "counter");
    w.sample("mtls_requests_total", {{"route", "a\"b"}, {"status", "2xx"}}, 3);
    w.sample("mtls_cert_seconds_left", {}, 12.5);
    EXPECT_EQ(w.text(),
              "# HELP mtls_requests_total Requests by route and status class.\n"
              "# TYPE mtls_requests_total counter\n"
              "mtls_requests_total{route=\"a\\\"b\",status=\"2xx\"} 3\n"
              "mtls_cert_seconds_left 12.5\n");
}

TEST(Prometheus, HistogramBucketsAreCumulative) {
    Histogram h;
    h.observe(0.0001);
    h.observe(0.003);
    h.observe(20);
    Writer w;
    h.write(w, "op_seconds", {{"op", "sign"}});
    const auto& t = w.text();
    EXPECT_NE(t.find("op_seconds_bucket{op=\"sign\",le=\"0.0005\"} 1\n"), std::string::npos) << t;
    EXPECT_NE(t.find("op_seconds_bucket{op=\"sign\",le=\"0.005\"} 2\n"), std::string::npos) << t;
    EXPECT_NE(t.find("op_seconds_bucket{op=\"sign\",le=\"10\"} 2\n"), std::string::npos) << t;
    EXPECT_NE(t.find("op_seconds_bucket{op=\"sign\",le=\"+Inf\"} 3\n"), std::string::npos) << t;
    EXPECT_NE(t.find("op_seconds_count{op=\"sign\"} 3\n"), std::string::npos) << t;
}

TEST(Prometheus, RequestHistogramHasApiProxyBuckets) {
    RequestHistogram h;
    h.observe(0.0004);  // 1 ms bucket
    h.observe(0.2);     // 0.25 s bucket
    h.observe(45);      // 60 s bucket
    h.observe(120);     // +Inf only
    Writer w;
    h.write(w, "d_seconds", {{"route", "r"}});
    const auto& t = w.text();
    EXPECT_NE(t.find("d_seconds_bucket{route=\"r\",le=\"0.001\"} 1\n"), std::string::npos) << t;
    EXPECT_NE(t.find("d_seconds_bucket{route=\"r\",le=\"0.25\"} 2\n"), std::string::npos) << t;
    EXPECT_NE(t.find("d_seconds_bucket{route=\"r\",le=\"60\"} 3\n"), std::string::npos) << t;
    EXPECT_NE(t.find("d_seconds_bucket{route=\"r\",le=\"+Inf\"} 4\n"), std::string::npos) << t;
    EXPECT_NE(t.find("d_seconds_count{route=\"r\"} 4\n"), std::string::npos) << t;
}
