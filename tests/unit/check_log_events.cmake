# Keeps docs/log-events.md honest: every event name the agent's sources log (log::info/warn/
# error/debug("…") and log::RateLimited(…, "…")) follows <part>.<snake_case> and appears in
# the document as `name`. Run by CTest: cmake -DSOURCE_DIR=<root> -P check_log_events.cmake
if(NOT SOURCE_DIR)
  message(FATAL_ERROR "SOURCE_DIR not set")
endif()
set(ws "[ \t\r\n]*")
set(parts "agent|pkcs11|est|renewal|oauth|proxy|admin|metrics|export|reload|revocation")
file(READ ${SOURCE_DIR}/docs/log-events.md doc)
file(GLOB_RECURSE sources ${SOURCE_DIR}/agent/*.cpp ${SOURCE_DIR}/agent/*.hpp
     ${SOURCE_DIR}/common/*.cpp ${SOURCE_DIR}/common/*.hpp ${SOURCE_DIR}/config/*.cpp
     ${SOURCE_DIR}/est/*.cpp ${SOURCE_DIR}/pkcs11/*.cpp ${SOURCE_DIR}/pkcs11/*.hpp
     ${SOURCE_DIR}/revocation/*.cpp ${SOURCE_DIR}/revocation/*.hpp)
set(problems "")
set(count 0)
foreach(f IN LISTS sources)
  file(READ ${f} text)
  string(REGEX MATCHALL "log::(info|warn|error|debug)\\(${ws}\"[^\"]+\"" calls "${text}")
  string(REGEX MATCHALL "RateLimited[ \t\r\na-z_]*[({]${ws}(log::)?Level::[a-z]+,${ws}\"[^\"]+\""
         limited "${text}")
  foreach(call IN LISTS calls limited)
    string(REGEX REPLACE ".*\"([^\"]+)\"$" "\\1" name "${call}")
    if(name STREQUAL "proxy.accept_failed" AND f MATCHES "rate_limited_log.hpp$")
      continue()  # the header's usage example
    endif()
    math(EXPR count "${count} + 1")
    file(RELATIVE_PATH rel ${SOURCE_DIR} ${f})
    if(NOT name MATCHES "^(${parts})\\.[a-z0-9_]+$")
      string(APPEND problems "  ${rel}: ${name} is not <part>.<snake_case> (parts: ${parts})\n")
    endif()
    string(FIND "${doc}" "`${name}`" at)
    if(at EQUAL -1)
      string(APPEND problems "  ${rel}: ${name} is not in docs/log-events.md\n")
    endif()
  endforeach()
endforeach()
if(count LESS 50)
  message(FATAL_ERROR "only ${count} log calls found: the patterns no longer match the sources")
endif()
if(problems)
  message(FATAL_ERROR "log events:\n${problems}")
endif()
message(STATUS "${count} log calls checked")
