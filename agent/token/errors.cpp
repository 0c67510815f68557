#include "agent/token/errors.hpp"

namespace mtls::token {

TokenError make_error(std::string code, std::string message) {
    return TokenError{std::move(code), std::move(message)};
}

}  // namespace mtls::token
