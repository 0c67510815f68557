mtls_fuzzer(fuzz_sandbox_jwt ${CMAKE_CURRENT_LIST_DIR}/fuzz_sandbox_jwt.cpp
            ${PROJECT_SOURCE_DIR}/tests/sandbox/jwt.cpp ${PROJECT_SOURCE_DIR}/tests/sandbox/pem.cpp)
target_include_directories(fuzz_sandbox_jwt PRIVATE ${PROJECT_SOURCE_DIR})
target_link_libraries(fuzz_sandbox_jwt PRIVATE mtls_common nlohmann_json::nlohmann_json)
