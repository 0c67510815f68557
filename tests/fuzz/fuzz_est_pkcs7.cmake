mtls_fuzzer(fuzz_est_pkcs7 ${CMAKE_CURRENT_LIST_DIR}/fuzz_est_pkcs7.cpp)
target_link_libraries(fuzz_est_pkcs7 PRIVATE mtls_est)
