mtls_fuzzer(fuzz_pkcs11_uri ${CMAKE_CURRENT_LIST_DIR}/fuzz_pkcs11_uri.cpp)
target_link_libraries(fuzz_pkcs11_uri PRIVATE mtls_pkcs11_uri)
