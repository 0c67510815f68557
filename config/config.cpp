// Loading: TOML text -> toml++ document -> section readers (sections_*.cpp) -> Config or a
// list of every problem found, in file order.
#include "config/config.hpp"

#include "common/atomic_file.hpp"
#include "config/sections.hpp"

#include <toml++/toml.h>

#include <algorithm>
#include <stdexcept>
#include <system_error>
#include <thread>

namespace mtls::config {

const char* to_string(KeyType t) {
    switch (t) {
        case KeyType::ec_p256:
            return "ec-p256";
        case KeyType::ec_p384:
            return "ec-p384";
        case KeyType::rsa_2048:
            return "rsa-2048";
        case KeyType::rsa_3072:
            return "rsa-3072";
    }
    return "?";
}

std::size_t default_workers() {
    const unsigned cpus = std::thread::hardware_concurrency();
    return std::clamp<std::size_t>(cpus, 1, 16);
}

std::string Error::to_string() const {
    std::string s = file;
    if (line > 0) s += ":" + std::to_string(line);
    s += ": ";
    if (!key.empty()) s += key + ": ";
    return s + message;
}

namespace {
constexpr std::size_t kMaxFileBytes = 1u << 20;
}

LoadResult load_string(std::string_view toml_text, const std::string& name) {
    LoadResult r;
    toml::table doc;
    try {
        doc = toml::parse(toml_text, std::string_view(name));
    } catch (const toml::parse_error& e) {
        const auto& at = e.source().begin;
        r.errors.push_back({name, static_cast<int>(at.line), "",
                            "TOML syntax error at column " + std::to_string(at.column) + ": " +
                                std::string(e.description())});
        return r;
    }

    detail::Errors errors(name);
    Config c;
    c.source = name;
    detail::Section root(errors, &doc, "");
    // Order matters only for cross-checks: routes need the oauth profiles, metrics the
    // listener's loopback opt-in. Errors are sorted by line afterwards.
    detail::read_agent(root, c);
    detail::read_pkcs11(root, c);
    detail::read_key(root, c);
    detail::read_est(root, c);
    detail::read_renewal(root, c);
    detail::read_export(root, c);
    detail::read_oauth(root, c);
    detail::read_routes(root, c);
    detail::read_listener(root, c);
    detail::read_admin(root, c);
    detail::read_metrics(root, c);
    detail::read_logging(root, c);
    detail::read_revocation(root, c);
    root.finish();

    if (errors.empty())
        r.config = std::move(c);
    else
        r.errors = errors.take();
    return r;
}

LoadResult load_file(const std::string& path) {
    std::string text;
    try {
        text = files::read_all(path, kMaxFileBytes);
    } catch (const std::system_error& e) {
        LoadResult r;
        r.errors.push_back(
            {path, 0, "", "cannot read the configuration file: " + e.code().message()});
        return r;
    } catch (const std::length_error&) {
        LoadResult r;
        r.errors.push_back({path, 0, "", "the configuration file is larger than 1 MiB"});
        return r;
    }
    return load_string(text, path);
}

}  // namespace mtls::config
