mtls_fuzzer(fuzz_base64 ${CMAKE_CURRENT_LIST_DIR}/fuzz_base64.cpp)
target_link_libraries(fuzz_base64 PRIVATE mtls_common)
