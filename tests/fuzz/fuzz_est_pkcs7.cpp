// Fuzz target: the EST certs-only PKCS#7 parser (base64 or DER bodies, any Content-Type).
// Either certificates come back or an est::Error; nothing else may escape.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "est/errors.hpp"
#include "est/pkcs7.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    // The first byte picks the Content-Type variant, the rest is the body.
    static constexpr std::string_view types[] = {"", "application/pkcs7-mime",
                                                 "application/pkcs7-mime; smime-type=certs-only",
                                                 "text/plain"};
    std::string_view ct = size ? types[data[0] % 4] : "";
    try {
        auto certs = mtls::est::parse_certs_only(size ? in.substr(1) : in, ct);
        if (certs.empty()) std::abort();
        for (auto& c : certs)
            if (!c) std::abort();
    } catch (const mtls::est::Error&) {
    }
    return 0;
}
