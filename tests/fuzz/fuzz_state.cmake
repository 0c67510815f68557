mtls_fuzzer(fuzz_state ${CMAKE_CURRENT_LIST_DIR}/fuzz_state.cpp)
target_link_libraries(fuzz_state PRIVATE mtls_renewal)
