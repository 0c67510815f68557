// Turning OpenSSL's error queue into text for error messages.
#pragma once

#include <stdexcept>
#include <string>

namespace mtls::ossl {

// Drains the thread's OpenSSL error queue; returns "reason (lib)" lines joined by "; ",
// or "no OpenSSL error recorded".
std::string drain_errors();

// An exception whose message is `what` followed by the drained OpenSSL errors.
class Error : public std::runtime_error {
public:
    explicit Error(const std::string& what);
};

}  // namespace mtls::ossl
