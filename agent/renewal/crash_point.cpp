#include "agent/renewal/crash_point.hpp"

#include "common/log.hpp"

#include <csignal>
#include <cstdlib>
#include <string>

namespace mtls::renewal {

void crash_point(std::string_view phase, std::string_view step) {
    static const std::string target = [] {
        const char* v = std::getenv("MTLS_AGENT_TEST_CRASH_AT");
        return std::string(v ? v : "");
    }();
    if (target.empty() || target.size() != phase.size() + 1 + step.size() ||
        target.compare(0, phase.size(), phase) != 0 || target[phase.size()] != ':' ||
        target.compare(phase.size() + 1, std::string::npos, step) != 0)
        return;
    log::warn("renewal.test_crash_point", {{"at", target}});
    std::raise(SIGKILL);
}

}  // namespace mtls::renewal
