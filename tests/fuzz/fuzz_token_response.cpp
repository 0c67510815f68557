// libFuzzer target: the token endpoint answer parser, the OAuth error parser, the AS
// metadata parser and the JWT binding check — all fed the same arbitrary bytes. Also
// checks the parsers' promises (accepted tokens are sane; problems never echo the token).
#include "agent/token/jwt_binding.hpp"
#include "agent/token/metadata.hpp"
#include "agent/token/token_response.hpp"

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

using namespace mtls::token;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view input(reinterpret_cast<const char*>(data), size);

    auto r = parse_token_response(input);
    if (auto* ok = std::get_if<TokenResponse>(&r)) {
        if (ok->access_token.empty() || ok->access_token.size() > 16 * 1024 ||
            !is_b64token(ok->access_token) || ok->expires_in.count() <= 0 ||
            ok->expires_in.count() > 365L * 24 * 3600)
            std::abort();
        (void)check_binding(ok->access_token, "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU");
    }
    (void)parse_error_response(input);

    // The input as an access token itself (JWT or opaque).
    auto b = check_binding(input, "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU");
    if (b.result == BindingCheck::Result::bound && b.token_x5t.size() != 43) std::abort();

    (void)parse_metadata(input, "https://as.example");
    return 0;
}
