#include "tests/e2e/figures.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace mtls::test::e2e {

Figures& figures() {
    static Figures f;
    return f;
}

int env_count(const char* name, int fallback) {
    const char* v = std::getenv(name);
    if (!v || !*v) return fallback;
    try {
        int n = std::stoi(v);
        return n > 0 ? n : fallback;
    } catch (const std::exception&) {
        return fallback;
    }
}

namespace {

class PrintFigures : public ::testing::Environment {
  public:
    void TearDown() override {
        const auto& f = figures();
        std::printf(
            "\n=== end-to-end figures ===\n"
            "requests sent:    %llu\n"
            "requests ok:      %llu\n"
            "requests failed:  %llu\n"
            "rotations:        %llu\n"
            "renewals (self):  %llu\n"
            "kills (SIGKILL):  %llu\n"
            "restarts:         %llu\n",
            static_cast<unsigned long long>(f.requests_sent.load()),
            static_cast<unsigned long long>(f.requests_ok.load()),
            static_cast<unsigned long long>(f.requests_failed.load()),
            static_cast<unsigned long long>(f.rotations.load()),
            static_cast<unsigned long long>(f.renewals.load()),
            static_cast<unsigned long long>(f.kills.load()),
            static_cast<unsigned long long>(f.restarts.load()));
        std::fflush(stdout);
    }
};

[[maybe_unused]] ::testing::Environment* const registered =
    ::testing::AddGlobalTestEnvironment(new PrintFigures);

}  // namespace
}  // namespace mtls::test::e2e
