// Fuzz target: the admin socket's request-line parser. Anything is either a Request or a
// CommandError; nothing else may escape. A parsed request, serialised, parses again, and
// from then on serialisation is stable (the first round may normalise, e.g. 1e999 -> null).
#include "agent/admin/protocol.hpp"

#include <cstdint>
#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view line(reinterpret_cast<const char*>(data), size);
    try {
        auto r = mtls::admin::parse_request(line);
        auto once = mtls::admin::request_line(mtls::admin::parse_request(mtls::admin::request_line(r)));
        auto twice = mtls::admin::request_line(mtls::admin::parse_request(once));
        if (once != twice) std::abort();
    } catch (const mtls::admin::CommandError&) {
    }
    return 0;
}
