# ctest setup test package.build_deb: a fresh .deb of this build in ${OUT}.
#   cmake -DCPACK=cpack -DCONFIG=<build>/CPackConfig.cmake -DOUT=<dir> -P build_deb.cmake
file(REMOVE_RECURSE "${OUT}")
execute_process(COMMAND "${CPACK}" -G DEB --config "${CONFIG}" -B "${OUT}" RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "cpack failed (${rc})")
endif()
file(GLOB debs "${OUT}/mtls-agent_*.deb")
list(LENGTH debs n)
if(NOT n EQUAL 1)
  message(FATAL_ERROR "expected one mtls-agent .deb in ${OUT}, found: ${debs}")
endif()
message(STATUS "package: ${debs}")
