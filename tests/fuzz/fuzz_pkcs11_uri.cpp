// libFuzzer target for the RFC 7512 pkcs11: URI parser: any input either parses or throws
// pkcs11::Error; a parsed URI re-encodes to text that parses to the same attributes.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "pkcs11/errors.hpp"
#include "pkcs11/uri.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    mtls::pkcs11::Uri u;
    try {
        u = mtls::pkcs11::Uri::parse(text);
    } catch (const mtls::pkcs11::Error&) {
        return 0;
    }
    const mtls::pkcs11::Uri back = mtls::pkcs11::Uri::parse(u.to_string());
    if (back.token != u.token || back.serial != u.serial || back.manufacturer != u.manufacturer ||
        back.model != u.model || back.object != u.object || back.id != u.id ||
        back.type != u.type || back.slot_id != u.slot_id)
        std::abort();
    return 0;
}
