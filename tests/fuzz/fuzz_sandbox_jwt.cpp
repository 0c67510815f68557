// Fuzz target: the sandbox's JWT reader (the partner API validates every bearer token it is
// sent with it) and the JWK thumbprint. Random input must never verify, crash or leak.
#include "tests/sandbox/jwt.hpp"

#include <cstdint>
#include <cstdlib>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const mtls::sandbox::JwtSigner signer;
    std::string in(reinterpret_cast<const char*>(data), size);
    if (signer.verify(in)) std::abort();  // forging an ES256 signature is not expected
    auto j = nlohmann::json::parse(in, nullptr, false);
    if (!j.is_discarded()) (void)mtls::sandbox::jwk_thumbprint(j);
    return 0;
}
