# Strict warnings for the project's own targets only (third-party headers are system headers).
# OPENSSL_NO_DEPRECATED: none of our code may use deprecated OpenSSL APIs (no ENGINE, no
# RSA_METHOD / EC_KEY_METHOD); token keys reach OpenSSL through our provider.
function(mtls_strict target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Werror -Wshadow -Wnon-virtual-dtor)
  target_compile_definitions(${target} PRIVATE OPENSSL_API_COMPAT=30000 OPENSSL_NO_DEPRECATED)
endfunction()
