#include "est/csr_extras.hpp"

#include <openssl/asn1.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/x509v3.h>

#include "common/encoding.hpp"
#include "common/ossl.hpp"
#include "common/ossl_error.hpp"
#include "config/csr_attributes.hpp"
#include "est/errors.hpp"

namespace mtls::est {
namespace {

using ExtraAttr = ossl::Owned<X509_ATTRIBUTE, &X509_ATTRIBUTE_free>;
using ExtraType = ossl::Owned<ASN1_TYPE, &ASN1_TYPE_free>;
using ExtraString = ossl::Owned<ASN1_STRING, &ASN1_STRING_free>;

ossl::Asn1Object extra_obj(const CsrExtra& item) {
    ossl::Asn1Object obj(OBJ_txt2obj(item.oid.c_str(), 1));
    if (!obj)
        throw Error(Error::Kind::config, csr_attribute_config_key(item.config_key) + ": \"" +
                                             item.oid + "\" is not an OID");
    return obj;
}

Error bad_value(const CsrExtra& item, const std::string& what) {
    return Error(Error::Kind::config,
                 "cannot encode " + csr_attribute_config_key(item.config_key) + " as a CSR " +
                     (item.extension ? "extension" : "attribute") + ": " + what);
}

bool known_extension(const std::string& oid) {
    ossl::Asn1Object obj(OBJ_txt2obj(oid.c_str(), 1));
    const int nid = obj ? OBJ_obj2nid(obj.get()) : NID_undef;
    ERR_clear_error();
    return nid != NID_undef && X509V3_EXT_get_nid(nid) != nullptr;
}

bool is_der(const std::string& v) {
    return v.rfind("DER:", 0) == 0;
}

// A text value as a DER string: IA5String for IA5 types (macAddress), else UTF8String.
ExtraString text_string(const CsrExtra& item) {
    ExtraString s(ASN1_STRING_type_new(config::csr_attribute_is_ia5(item.oid) ? V_ASN1_IA5STRING
                                                                              : V_ASN1_UTF8STRING));
    if (!s || ASN1_STRING_set(s.get(), item.value.data(), static_cast<int>(item.value.size())) != 1)
        throw bad_value(item, ossl::drain_errors());
    return s;
}

}  // namespace

std::string csr_attribute_config_key(const std::string& key) {
    bool bare = !key.empty();
    for (char c : key)
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            bare = false;
    return "est.csr_attributes." + (bare ? key : "\"" + key + "\"");
}

CsrExtrasPlan plan_csr_extras(const CsrAttributes& asked,
                              const std::vector<config::CsrAttribute>& configured) {
    CsrExtrasPlan plan;
    for (const auto& c : configured) {
        bool as_extension = known_extension(c.oid);
        for (const auto& r : asked.requested)
            if (r.oid == c.oid && r.extension) as_extension = true;
        plan.items.push_back({c.oid, c.value, as_extension, c.key});
    }
    for (const auto& r : asked.requested) {
        bool supplied = false;
        for (const auto& c : configured) supplied = supplied || c.oid == r.oid;
        if (supplied) continue;
        const std::string name = config::csr_attribute_name(r.oid);
        plan.unmet.push_back("the EST server asked for " + r.describe() +
                             ", which the config does not supply: set " +
                             csr_attribute_config_key(name));
    }
    return plan;
}

void append_extra_extensions(STACK_OF(X509_EXTENSION) * exts, const std::vector<CsrExtra>& items) {
    for (const auto& item : items) {
        if (!item.extension) continue;
        ossl::X509ExtPtr ext;
        if (known_extension(item.oid) || is_der(item.value) || item.value.rfind("ASN1:", 0) == 0) {
            // OpenSSL's x509v3_config syntax ("digitalSignature", "DER:…", "ASN1:…").
            X509V3_CTX ctx;
            X509V3_set_ctx_nodb(&ctx);
            X509V3_set_ctx(&ctx, nullptr, nullptr, nullptr, nullptr, 0);
            // Known extensions by their short name; "DER:"/"ASN1:" values take any OID.
            auto obj = extra_obj(item);
            const int nid = OBJ_obj2nid(obj.get());
            const std::string name = nid != NID_undef ? OBJ_nid2sn(nid) : item.oid;
            ext.reset(X509V3_EXT_nconf(nullptr, &ctx, name.c_str(), item.value.c_str()));
            if (!ext) throw bad_value(item, ossl::drain_errors());
        } else {
            auto s = text_string(item);
            // extnValue holds the DER of the string.
            unsigned char* der = nullptr;
            ExtraType t(ASN1_TYPE_new());
            if (!t) throw ossl::Error("ASN1_TYPE_new");
            const int type = ASN1_STRING_type(s.get());
            ASN1_TYPE_set(t.get(), type, s.release());
            const int len = i2d_ASN1_TYPE(t.get(), &der);
            if (len <= 0) throw bad_value(item, ossl::drain_errors());
            ossl::Asn1OctetString oct(ASN1_OCTET_STRING_new());
            const bool ok = oct && ASN1_OCTET_STRING_set(oct.get(), der, len) == 1;
            OPENSSL_free(der);
            if (!ok) throw ossl::Error("ASN1_OCTET_STRING_set");
            auto obj = extra_obj(item);
            ext.reset(X509_EXTENSION_create_by_OBJ(nullptr, obj.get(), 0, oct.get()));
            if (!ext) throw bad_value(item, ossl::drain_errors());
        }
        if (!sk_X509_EXTENSION_push(exts, ext.get())) throw ossl::Error("sk_X509_EXTENSION_push");
        (void)ext.release();
    }
}

void add_extra_attributes(X509_REQ* req, const std::vector<CsrExtra>& items) {
    for (const auto& item : items) {
        if (item.extension) continue;
        auto obj = extra_obj(item);
        ExtraAttr attr;
        if (is_der(item.value)) {
            auto der = encoding::hex_decode(std::string_view(item.value).substr(4)).value_or("");
            const auto* p = reinterpret_cast<const unsigned char*>(der.data());
            ExtraType t(d2i_ASN1_TYPE(nullptr, &p, static_cast<long>(der.size())));
            if (!t || p != reinterpret_cast<const unsigned char*>(der.data()) + der.size())
                throw bad_value(item,
                                "the DER is not one complete ASN.1 value " + ossl::drain_errors());
            // A BOOLEAN's or NULL's value is no pointer to copy from.
            if (t->type == V_ASN1_BOOLEAN || t->type == V_ASN1_NULL)
                throw bad_value(item, "BOOLEAN and NULL values are not supported");
            attr.reset(X509_ATTRIBUTE_new());
            if (!attr || X509_ATTRIBUTE_set1_object(attr.get(), obj.get()) != 1)
                throw ossl::Error("X509_ATTRIBUTE_set1_object");
            if (X509_ATTRIBUTE_set1_data(attr.get(), t->type, t->value.ptr, -1) != 1)
                throw bad_value(item, ossl::drain_errors());
        } else {
            auto s = text_string(item);
            attr.reset(X509_ATTRIBUTE_create_by_OBJ(nullptr, obj.get(), ASN1_STRING_type(s.get()),
                                                    ASN1_STRING_get0_data(s.get()),
                                                    ASN1_STRING_length(s.get())));
            if (!attr) throw bad_value(item, ossl::drain_errors());
        }
        if (X509_REQ_add1_attr(req, attr.get()) != 1)
            throw bad_value(item, "X509_REQ_add1_attr: " + ossl::drain_errors());
    }
}

}  // namespace mtls::est
