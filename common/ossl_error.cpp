#include "common/ossl_error.hpp"

#include <openssl/err.h>

namespace mtls::ossl {

std::string drain_errors() {
    std::string out;
    unsigned long code = 0;
    const char* data = nullptr;
    int flags = 0;
    while ((code = ERR_get_error_all(nullptr, nullptr, nullptr, &data, &flags)) != 0) {
        char buf[256];
        ERR_error_string_n(code, buf, sizeof buf);
        if (!out.empty()) out += "; ";
        out += buf;
        if ((flags & ERR_TXT_STRING) && data && *data) {
            out += " (";
            out += data;
            out += ")";
        }
    }
    return out.empty() ? "no OpenSSL error recorded" : out;
}

Error::Error(const std::string& what) : std::runtime_error(what + ": " + drain_errors()) {}

}  // namespace mtls::ossl
