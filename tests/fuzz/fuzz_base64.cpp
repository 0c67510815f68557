// Fuzz target: the tolerant base64 decoder used for EST bodies. Decoding then re-encoding
// must round-trip to the canonical form, in one line and in 64-column lines.
#include "common/encoding.hpp"

#include <cstdint>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    if (auto bytes = mtls::encoding::base64_decode(in)) {
        auto again = mtls::encoding::base64_decode(mtls::encoding::base64(*bytes));
        if (!again || *again != *bytes) std::abort();
        // The MIME line form (RFC 2045 §6.8) decodes to the same bytes.
        auto lines = mtls::encoding::base64_decode(mtls::encoding::base64_lines(*bytes));
        if (!lines || *lines != *bytes) std::abort();
    }
    if (auto bytes = mtls::encoding::base64url_decode(in)) {
        if (mtls::encoding::base64url_decode(mtls::encoding::base64url(*bytes)) != *bytes)
            std::abort();
    }
    (void)mtls::encoding::hex_decode(in);
    return 0;
}
