#include "config/csr_attributes.hpp"

#include <openssl/asn1.h>
#include <openssl/err.h>
#include <openssl/objects.h>

#include <array>

#include "common/encoding.hpp"
#include "common/ossl.hpp"

namespace mtls::config {
namespace {

struct KnownCsrType {
    std::string_view name;
    std::string_view oid;
    bool ia5;
};
// Attribute types OpenSSL has no name for.
constexpr std::array<KnownCsrType, 1> kKnownCsrTypes = {{
    {"macAddress", "1.3.6.1.1.1.1.22", true},  // RFC 2307, as in RFC 7030 §4.5.2's example
}};

std::string dotted(const ASN1_OBJECT* obj) {
    char buf[256];
    const int n = OBJ_obj2txt(buf, sizeof buf, obj, 1);
    if (n <= 0 || static_cast<std::size_t>(n) >= sizeof buf) return {};
    return buf;
}

}  // namespace

std::string csr_attribute_oid(std::string_view name) {
    if (name.empty() || name.size() > 200) return {};
    for (const auto& k : kKnownCsrTypes)
        if (k.name == name) return std::string(k.oid);
    const std::string text(name);
    // Dotted form first (no_name = 1), then OpenSSL's names.
    ossl::Asn1Object obj(OBJ_txt2obj(text.c_str(), 1));
    if (!obj) obj.reset(OBJ_txt2obj(text.c_str(), 0));
    ERR_clear_error();
    if (!obj || OBJ_length(obj.get()) == 0) return {};
    return dotted(obj.get());
}

std::string csr_attribute_name(std::string_view oid) {
    for (const auto& k : kKnownCsrTypes)
        if (k.oid == oid) return std::string(k.name);
    const std::string text(oid);
    ossl::Asn1Object obj(OBJ_txt2obj(text.c_str(), 1));
    ERR_clear_error();
    if (!obj) return text;
    const int nid = OBJ_obj2nid(obj.get());
    if (nid == NID_undef) return text;
    return OBJ_nid2sn(nid);
}

bool csr_attribute_is_ia5(std::string_view oid) {
    for (const auto& k : kKnownCsrTypes)
        if (k.oid == oid) return k.ia5;
    return false;
}

std::string csr_attribute_value_problem(std::string_view oid, std::string_view value) {
    if (value.empty()) return "is empty";
    if (value.size() > 1024) return "is longer than 1024 bytes";
    if (value.substr(0, 4) == "DER:") {
        auto der = encoding::hex_decode(value.substr(4));
        if (!der || der->empty())
            return "\"DER:\" must be followed by the value's DER encoding in hex";
        return {};
    }
    const bool ia5 = csr_attribute_is_ia5(oid);
    for (unsigned char c : value) {
        if (c < 0x20 || c == 0x7f) return "holds a control character";
        if (ia5 && c >= 0x80)
            return "must be ASCII: " + csr_attribute_name(oid) + " values are IA5String";
    }
    return {};
}

}  // namespace mtls::config
