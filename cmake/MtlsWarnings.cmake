# Strict warnings for the project's own targets only (third-party headers are system headers).
# OPENSSL_NO_DEPRECATED: none of our code may use deprecated OpenSSL APIs (no ENGINE, no
# RSA_METHOD / EC_KEY_METHOD); token keys reach OpenSSL through our provider.
function(mtls_strict target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Werror -Wshadow -Wnon-virtual-dtor)
  # Unity builds (the presets' default, to halve build time) put several .cpp files in one
  # translation unit: GCC then takes types from anonymous namespaces for header types
  # (-Wsubobject-linkage), which is wrong for us. Helpers in anonymous namespaces must have
  # names unique within their target.
  if(CMAKE_UNITY_BUILD AND CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    target_compile_options(${target} PRIVATE -Wno-subobject-linkage)
  endif()
  target_compile_definitions(${target} PRIVATE OPENSSL_API_COMPAT=30000 OPENSSL_NO_DEPRECATED)
endfunction()

# For targets built on Boost.Asio/Beast coroutines with <boost/asio/ssl.hpp> (call after
# mtls_strict(target)):
# - Asio 1.74's SSL headers wrap OpenSSL functions deprecated in 3.0 (RSA, DH), which
#   OPENSSL_NO_DEPRECATED removes. Keep OPENSSL_API_COMPAT=30000 (our own use of a
#   deprecated function is still a -Werror deprecation error) but drop OPENSSL_NO_DEPRECATED.
# - GCC 12 reports a false -Wmismatched-new-delete on every asio::awaitable frame.
function(mtls_asio_target target)
  get_target_property(defs ${target} COMPILE_DEFINITIONS)
  list(REMOVE_ITEM defs OPENSSL_NO_DEPRECATED)
  set_target_properties(${target} PROPERTIES COMPILE_DEFINITIONS "${defs}")
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    target_compile_options(${target} PRIVATE -Wno-mismatched-new-delete)
  endif()
endfunction()
