#include "est/pkcs7.hpp"

#include <openssl/err.h>
#include <openssl/pkcs7.h>

#include <algorithm>
#include <cctype>

#include "common/encoding.hpp"
#include "common/ossl_error.hpp"
#include "common/text.hpp"
#include "est/errors.hpp"

namespace mtls::est {
namespace {

Error bad_pkcs7(const std::string& what) {
    return Error(Error::Kind::bad_response,
                 "EST response is not a usable certs-only PKCS#7: " + what);
}

}  // namespace

std::string media_type(std::string_view ct) {
    auto semi = ct.find(';');
    return text::lower(text::trim(ct.substr(0, semi)));
}

std::vector<ossl::X509Ptr> parse_certs_only(std::string_view body, std::string_view content_type) {
    if (!content_type.empty()) {
        std::string mt = media_type(content_type);
        if (mt != "application/pkcs7-mime" && mt != "application/x-pkcs7-mime" &&
            mt != "application/pkcs7" && mt != "application/octet-stream")
            throw bad_pkcs7("the server sent Content-Type \"" + std::string(content_type) +
                            "\", expected application/pkcs7-mime");
    }
    const std::string_view trimmed = text::trim(body);
    if (trimmed.empty()) throw bad_pkcs7("the body is empty");

    std::string der;
    if (auto decoded = encoding::base64_decode(trimmed)) {
        der = std::move(*decoded);
    } else if (static_cast<unsigned char>(body.front()) == 0x30) {
        der.assign(body);  // a server sending binary DER despite RFC 8951
    } else {
        throw bad_pkcs7("the body is neither base64 nor DER");
    }
    if (der.empty()) throw bad_pkcs7("the body decodes to nothing");

    const auto* p = reinterpret_cast<const unsigned char*>(der.data());
    ossl::Pkcs7 p7(d2i_PKCS7(nullptr, &p, static_cast<long>(der.size())));
    if (!p7) {
        std::string why = ossl::drain_errors();
        throw bad_pkcs7("cannot decode the PKCS#7 structure (truncated or not PKCS#7): " + why);
    }
    const auto consumed =
        static_cast<std::size_t>(p - reinterpret_cast<const unsigned char*>(der.data()));
    if (consumed != der.size())
        throw bad_pkcs7(std::to_string(der.size() - consumed) +
                        " bytes of trailing data after the PKCS#7");
    if (!PKCS7_type_is_signed(p7.get()))
        throw bad_pkcs7(std::string("PKCS#7 type is ") + OBJ_nid2ln(OBJ_obj2nid(p7->type)) +
                        ", expected signed-data");
    PKCS7_SIGNED* sd = p7->d.sign;
    if (!sd) throw bad_pkcs7("signed-data without a body");
    if (PKCS7* inner = sd->contents) {
        if (PKCS7_type_is_data(inner) && inner->d.data && ASN1_STRING_length(inner->d.data) > 0)
            throw bad_pkcs7("signed-data carries content; a certs-only response has none");
        if (!PKCS7_type_is_data(inner) && inner->d.ptr)
            throw bad_pkcs7("signed-data carries non-data content; a certs-only response has none");
    }
    STACK_OF(X509)* certs = sd->cert;
    if (!certs || sk_X509_num(certs) == 0) throw bad_pkcs7("it contains no certificates");
    std::vector<ossl::X509Ptr> out;
    for (int i = 0; i < sk_X509_num(certs); ++i) {
        X509* c = sk_X509_value(certs, i);
        if (!c) continue;
        X509_up_ref(c);
        out.emplace_back(c);
    }
    if (out.empty()) throw bad_pkcs7("it contains no certificates");
    return out;
}

}  // namespace mtls::est
