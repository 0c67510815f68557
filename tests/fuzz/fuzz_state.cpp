// Fuzz target: the persisted-state parser. Anything parses or throws StateError; a parsed
// state serialises and parses back to the same thing.
#include "agent/renewal/state_store.hpp"

#include <cstdint>
#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    try {
        auto s = mtls::renewal::parse_state(text, "fuzz");
        auto text2 = mtls::renewal::serialize_state(s);
        if (mtls::renewal::serialize_state(mtls::renewal::parse_state(text2, "again")) != text2)
            std::abort();
    } catch (const mtls::renewal::StateError&) {
    }
    return 0;
}
