// Fuzz target: the config loader on arbitrary text. It must never crash, and whatever it
// accepts must render to TOML that loads back to the same rendering.
#include "config/config.hpp"

#include <cstdint>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    auto first = mtls::config::load_string(text, "fuzz.toml");
    if (first.config.has_value() != first.errors.empty()) std::abort();
    for (const auto& e : first.errors) {
        if (e.file != "fuzz.toml" || e.message.empty() || e.line < 0) std::abort();
        (void)e.to_string();
    }
    if (!first.config) return 0;
    std::string once = mtls::config::render(*first.config);
    auto second = mtls::config::load_string(once, "fuzz.toml");
    if (!second.config) std::abort();  // a rendering that does not load back
    if (mtls::config::render(*second.config) != once) std::abort();
    return 0;
}
