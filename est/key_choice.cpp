#include "est/key_choice.hpp"

#include <openssl/objects.h>

#include <algorithm>

#include "est/errors.hpp"

namespace mtls::est {
namespace {

constexpr config::KeyType kTokenKeyTypes[] = {config::KeyType::ec_p256, config::KeyType::ec_p384,
                                              config::KeyType::rsa_2048, config::KeyType::rsa_3072};

bool request_matches(const KeyRequest& k, config::KeyType t) {
    using config::KeyType;
    switch (k.type) {
        case KeyRequest::Type::ec:
            if (t == KeyType::ec_p256) return !k.curve_nid || k.curve_nid == NID_X9_62_prime256v1;
            if (t == KeyType::ec_p384) return !k.curve_nid || k.curve_nid == NID_secp384r1;
            return false;
        case KeyRequest::Type::rsa:
            if (t == KeyType::rsa_2048) return !k.rsa_bits || k.rsa_bits == 2048;
            if (t == KeyType::rsa_3072) return !k.rsa_bits || k.rsa_bits == 3072;
            return false;
        default:
            return false;
    }
}

std::string wanted_text(const CsrAttributes& attrs) {
    std::string s;
    for (const auto& k : attrs.keys) s += (s.empty() ? "" : " or ") + k.describe();
    return s;
}

std::string type_list(const std::vector<config::KeyType>& v) {
    std::string s;
    for (auto t : v) s += (s.empty() ? "\"" : ", \"") + std::string(config::to_string(t)) + "\"";
    return s;
}

}  // namespace

bool key_type_satisfies(const CsrAttributes& attrs, config::KeyType t) {
    if (attrs.keys.empty()) return true;
    return std::any_of(attrs.keys.begin(), attrs.keys.end(),
                       [&](const KeyRequest& k) { return request_matches(k, t); });
}

std::vector<config::KeyType> acceptable_key_types(const config::KeyPolicy& policy) {
    if (!policy.types.empty()) return policy.types;
    if (!policy.from_server) return {policy.type};
    std::vector<config::KeyType> all{policy.type};
    for (auto t : kTokenKeyTypes)
        if (t != policy.type) all.push_back(t);
    return all;
}

config::KeyType choose_key_type(const CsrAttributes& attrs, const config::KeyPolicy& policy) {
    if (key_type_satisfies(attrs, policy.type)) return policy.type;
    const auto acceptable = acceptable_key_types(policy);
    for (const auto& k : attrs.keys)
        for (auto t : acceptable)
            if (request_matches(k, t)) return t;

    // Nothing we may make satisfies the server: say what it asked and what to change.
    std::vector<config::KeyType> would;
    for (const auto& k : attrs.keys)
        for (auto t : kTokenKeyTypes)
            if (request_matches(k, t) && std::find(would.begin(), would.end(), t) == would.end())
                would.push_back(t);
    std::string msg = "the EST server's CSR attributes ask for a key of type " + wanted_text(attrs);
    if (would.empty()) {
        msg += ", which no key type the agent makes on the token satisfies (" +
               type_list({std::begin(kTokenKeyTypes), std::end(kTokenKeyTypes)}) +
               "); ask the CA for another certificate profile";
    } else if (!policy.types.empty()) {
        msg += ", but key.types allows only " + type_list(policy.types) + ": add \"" +
               config::to_string(would.front()) + "\" to [key] types";
    } else {
        msg += ", but key.type is \"" + std::string(config::to_string(policy.type)) +
               "\": set [key] type = \"" + config::to_string(would.front()) +
               "\", or type = \"from-server\" to follow the server";
    }
    throw Error(Error::Kind::config, msg);
}

std::optional<config::KeyType> key_type_from_name(std::string_view name) {
    for (auto t : kTokenKeyTypes)
        if (name == config::to_string(t)) return t;
    return std::nullopt;
}

}  // namespace mtls::est
