// Fuzz target: the admin socket's request-line parser. Anything is either a Request or a
// CommandError; nothing else may escape, and a parsed request re-serialises and re-parses.
#include "agent/admin/protocol.hpp"

#include <cstdint>
#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view line(reinterpret_cast<const char*>(data), size);
    try {
        auto r = mtls::admin::parse_request(line);
        auto again = mtls::admin::parse_request(mtls::admin::request_line(r));
        if (again.cmd != r.cmd || again.args != r.args) std::abort();
    } catch (const mtls::admin::CommandError&) {
    }
    return 0;
}
