// Placeholder until the loader lands (issue 2).
#include "config/config.hpp"

namespace mtls::config {

const char* to_string(KeyType t) {
    switch (t) {
        case KeyType::ec_p256: return "ec-p256";
        case KeyType::ec_p384: return "ec-p384";
        case KeyType::rsa_2048: return "rsa-2048";
        case KeyType::rsa_3072: return "rsa-3072";
    }
    return "?";
}

std::string Error::to_string() const {
    std::string s = file;
    if (line > 0) s += ":" + std::to_string(line);
    s += ": ";
    if (!key.empty()) s += key + ": ";
    return s + message;
}

LoadResult load_file(const std::string& path) {
    LoadResult r;
    r.errors.push_back({path, 0, "", "config loader not implemented yet"});
    return r;
}

LoadResult load_string(std::string_view, const std::string& name) { return load_file(name); }

std::string render(const Config&) { return {}; }

}  // namespace mtls::config
