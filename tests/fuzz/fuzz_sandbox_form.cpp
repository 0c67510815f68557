// Fuzz target: the sandbox's application/x-www-form-urlencoded / query parser (token and
// introspection bodies, admin queries). Every decoded pair must re-encode to an input that
// parses to the same pairs.
#include "tests/sandbox/form.hpp"

#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

std::string encode(const std::string& s) {
    static const char* hex = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : s) {
        if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
            out += static_cast<char>(c);
        } else {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    (void)mtls::sandbox::split_target(in);
    auto form = mtls::sandbox::Form::parse(in);
    if (!form) return 0;
    std::string again;
    for (auto& [k, v] : form->pairs()) {
        if (!again.empty()) again += '&';
        again += encode(k) + "=" + encode(v);
    }
    auto reparsed = mtls::sandbox::Form::parse(again);
    if (!reparsed) std::abort();
    // Empty names with empty values vanish ("&&"); compare the non-empty pairs.
    std::size_t j = 0;
    for (auto& p : form->pairs()) {
        if (p.first.empty() && p.second.empty()) continue;
        while (j < reparsed->pairs().size() && reparsed->pairs()[j].first.empty() &&
               reparsed->pairs()[j].second.empty())
            ++j;
        if (j >= reparsed->pairs().size() || reparsed->pairs()[j] != p) std::abort();
        ++j;
    }
    return 0;
}
