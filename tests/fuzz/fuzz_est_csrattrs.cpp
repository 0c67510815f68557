// Fuzz target: the EST CsrAttrs parser (base64 or DER), and the key check, the key type
// choice and the CSR-extras plan over its result.
#include <openssl/evp.h>

#include <cstdint>
#include <string_view>

#include "common/ossl.hpp"
#include "est/csr_extras.hpp"
#include "est/csrattrs.hpp"
#include "est/errors.hpp"
#include "est/key_choice.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static mtls::ossl::PKey key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
    std::string_view in(reinterpret_cast<const char*>(data), size);
    try {
        auto attrs = mtls::est::parse_csrattrs(in);
        (void)attrs.describe();
        (void)mtls::est::key_mismatch(attrs, key.get());
        (void)mtls::est::plan_csr_extras(attrs, {{"macAddress", "1.3.6.1.1.1.1.22", "x"}});
        mtls::config::KeyPolicy follow;
        follow.from_server = true;
        (void)mtls::est::choose_key_type(attrs, follow);
    } catch (const mtls::est::Error&) {
    }
    try {
        (void)mtls::est::parse_csrattrs_der(in);
    } catch (const mtls::est::Error&) {
    }
    return 0;
}
