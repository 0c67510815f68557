mtls_fuzzer(fuzz_est_csrattrs ${CMAKE_CURRENT_LIST_DIR}/fuzz_est_csrattrs.cpp)
target_link_libraries(fuzz_est_csrattrs PRIVATE mtls_est)
