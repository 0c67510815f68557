mtls_fuzzer(fuzz_sandbox_auth ${CMAKE_CURRENT_LIST_DIR}/fuzz_sandbox_auth.cpp
            ${PROJECT_SOURCE_DIR}/tests/sandbox/http_auth.cpp)
target_include_directories(fuzz_sandbox_auth PRIVATE ${PROJECT_SOURCE_DIR})
target_link_libraries(fuzz_sandbox_auth PRIVATE mtls_common)
