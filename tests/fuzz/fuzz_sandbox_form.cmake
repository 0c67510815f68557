mtls_fuzzer(fuzz_sandbox_form ${CMAKE_CURRENT_LIST_DIR}/fuzz_sandbox_form.cpp
            ${PROJECT_SOURCE_DIR}/tests/sandbox/form.cpp)
target_include_directories(fuzz_sandbox_form PRIVATE ${PROJECT_SOURCE_DIR})
