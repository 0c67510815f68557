#include "tests/sandbox/csrattrs.hpp"

#include "common/ossl.hpp"
#include "common/ossl_error.hpp"

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <sstream>
#include <stdexcept>
#include <vector>

namespace mtls::sandbox {
namespace {

using AttrObj = ossl::Owned<ASN1_OBJECT, &ASN1_OBJECT_free>;
using AttrValue = ossl::Owned<ASN1_TYPE, &ASN1_TYPE_free>;
using AttrOwned = ossl::Owned<X509_ATTRIBUTE, &X509_ATTRIBUTE_free>;
void free_attr_types(STACK_OF(ASN1_TYPE) * s) {
    sk_ASN1_TYPE_pop_free(s, ASN1_TYPE_free);
}
using AttrTypes = ossl::Owned<STACK_OF(ASN1_TYPE), &free_attr_types>;
void free_req_exts(STACK_OF(X509_EXTENSION) * s) {
    sk_X509_EXTENSION_pop_free(s, X509_EXTENSION_free);
}
using ReqExts = ossl::Owned<STACK_OF(X509_EXTENSION), &free_req_exts>;

constexpr const char* kMacAddress = "1.3.6.1.1.1.1.22";  // RFC 2307, not known to OpenSSL

std::string strip(std::string s) {
    auto sp = [](unsigned char c) { return std::isspace(c) != 0; };
    while (!s.empty() && sp(s.back())) s.pop_back();
    std::size_t i = 0;
    while (i < s.size() && sp(s[i])) ++i;
    return s.substr(i);
}

AttrObj spec_obj(const std::string& text) {
    const std::string t = text == "macAddress" ? kMacAddress : text;
    AttrObj o(OBJ_txt2obj(t.c_str(), 0));
    if (!o) {
        ERR_clear_error();
        throw std::invalid_argument("csrattrs: \"" + text + "\" is not an OID or OID name");
    }
    return o;
}

std::string name_of(const ASN1_OBJECT* o) {
    char buf[128];
    OBJ_obj2txt(buf, sizeof buf, o, 1);
    const std::string dotted = buf;
    if (dotted == kMacAddress) return "macAddress (" + dotted + ")";
    const int nid = OBJ_obj2nid(o);
    return nid == NID_undef ? dotted : std::string(OBJ_nid2sn(nid)) + " (" + dotted + ")";
}

struct SpecItem {
    AttrObj type;
    std::vector<AttrObj> oids;  // attribute values that are OIDs
    std::vector<long> ints;     // attribute values that are INTEGERs
    bool attribute = false;     // "TYPE=…" (else a bare OID)
};

std::vector<SpecItem> parse_spec(const std::string& spec_in, PopMode pop) {
    std::string spec = spec_in;
    std::vector<SpecItem> out;
    if (spec == "none" || spec.empty()) return out;
    if (spec == "default") {
        spec = "ecdsa-with-SHA256,id-ecPublicKey=prime256v1";
        if (pop != PopMode::off) spec = "challengePassword," + spec;
    }
    std::stringstream items(spec);
    std::string item;
    while (std::getline(items, item, ',')) {
        item = strip(item);
        if (item.empty()) continue;
        SpecItem si;
        const auto eq = item.find('=');
        si.type = spec_obj(strip(item.substr(0, eq)));
        if (eq != std::string::npos) {
            si.attribute = true;
            std::stringstream values(item.substr(eq + 1));
            std::string v;
            while (std::getline(values, v, '+')) {
                v = strip(v);
                if (!v.empty() && std::all_of(v.begin(), v.end(), ::isdigit))
                    si.ints.push_back(std::stol(v));
                else
                    si.oids.push_back(spec_obj(v));
            }
            if (si.oids.empty() && si.ints.empty())
                throw std::invalid_argument("csrattrs: \"" + item + "\" has no value");
        }
        out.push_back(std::move(si));
    }
    return out;
}

// ---- enforcement ------------------------------------------------------------------------

std::string curve_of(EVP_PKEY* key) {
    char group[64] = {};
    size_t len = 0;
    if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group,
                                       &len) != 1) {
        ERR_clear_error();
        return {};
    }
    return group;
}

int curve_nid_of(EVP_PKEY* key) {
    const std::string g = curve_of(key);
    int nid = OBJ_txt2nid(g.c_str());
    if (nid == NID_undef) nid = EC_curve_nist2nid(g.c_str());
    ERR_clear_error();
    return nid;
}

std::string key_text(EVP_PKEY* key) {
    if (EVP_PKEY_is_a(key, "EC")) return "EC " + curve_of(key);
    if (EVP_PKEY_is_a(key, "RSA")) return "RSA " + std::to_string(EVP_PKEY_get_bits(key));
    const char* n = EVP_PKEY_get0_type_name(key);
    return n ? n : "?";
}

bool has_extension(X509_REQ* req, const ASN1_OBJECT* type) {
    ReqExts exts(X509_REQ_get_extensions(req));
    ERR_clear_error();
    if (!exts) return false;
    return X509v3_get_ext_by_OBJ(exts.get(), type, -1) >= 0;
}

bool has_attribute(X509_REQ* req, const ASN1_OBJECT* type) {
    if (X509_REQ_get_attr_by_OBJ(req, type, -1) >= 0) return true;
    return X509_NAME_get_index_by_OBJ(X509_REQ_get_subject_name(req), type, -1) >= 0;
}

}  // namespace

std::string build_csrattrs_der(const std::string& spec, PopMode pop) {
    auto items = parse_spec(spec, pop);
    if (items.empty()) return {};
    AttrTypes seq(sk_ASN1_TYPE_new_null());
    if (!seq) throw ossl::Error("sk_ASN1_TYPE_new_null");
    for (auto& si : items) {
        AttrValue t(ASN1_TYPE_new());
        if (!t) throw ossl::Error("ASN1_TYPE_new");
        if (!si.attribute) {
            ASN1_TYPE_set(t.get(), V_ASN1_OBJECT, si.type.release());
        } else {
            AttrOwned attr(X509_ATTRIBUTE_new());
            if (!attr || X509_ATTRIBUTE_set1_object(attr.get(), si.type.get()) != 1)
                throw ossl::Error("X509_ATTRIBUTE_set1_object");
            for (auto& o : si.oids)
                if (X509_ATTRIBUTE_set1_data(attr.get(), V_ASN1_OBJECT, o.get(), -1) != 1)
                    throw ossl::Error("X509_ATTRIBUTE_set1_data");
            for (long n : si.ints) {
                ossl::Asn1Integer i(ASN1_INTEGER_new());
                if (!i || ASN1_INTEGER_set(i.get(), n) != 1 ||
                    X509_ATTRIBUTE_set1_data(attr.get(), V_ASN1_INTEGER, i.get(), -1) != 1)
                    throw ossl::Error("X509_ATTRIBUTE_set1_data");
            }
            unsigned char* der = nullptr;
            const int n = i2d_X509_ATTRIBUTE(attr.get(), &der);
            if (n <= 0) throw ossl::Error("i2d_X509_ATTRIBUTE");
            ASN1_STRING* str = ASN1_STRING_type_new(V_ASN1_SEQUENCE);
            const bool ok = str && ASN1_STRING_set(str, der, n) == 1;
            OPENSSL_free(der);
            if (!ok) {
                ASN1_STRING_free(str);
                throw ossl::Error("ASN1_STRING_set");
            }
            ASN1_TYPE_set(t.get(), V_ASN1_SEQUENCE, str);
        }
        if (!sk_ASN1_TYPE_push(seq.get(), t.get())) throw ossl::Error("sk_ASN1_TYPE_push");
        (void)t.release();
    }
    unsigned char* der = nullptr;
    const int n = i2d_ASN1_SEQUENCE_ANY(seq.get(), &der);
    if (n <= 0) throw ossl::Error("cannot encode csrattrs");
    std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(n));
    OPENSSL_free(der);
    return out;
}

std::string csrattrs_unmet(const std::string& spec, PopMode pop, X509_REQ* req) {
    const auto items = parse_spec(spec, pop);
    EVP_PKEY* pub = X509_REQ_get0_pubkey(req);
    int sig_nid = NID_undef, md_nid = NID_undef, pk_nid = NID_undef;
    sig_nid = X509_REQ_get_signature_nid(req);
    OBJ_find_sigid_algs(sig_nid, &md_nid, &pk_nid);

    std::vector<std::string> missing;
    std::vector<std::string> keys_wanted;  // alternatives
    bool key_ok = false;
    auto want_key = [&](const std::string& text, bool matches) {
        keys_wanted.push_back(text);
        key_ok = key_ok || matches;
    };
    const bool is_ec = pub && EVP_PKEY_is_a(pub, "EC");
    const bool is_rsa = pub && EVP_PKEY_is_a(pub, "RSA");
    const std::string sig_name = sig_nid == NID_undef ? "?" : OBJ_nid2sn(sig_nid);

    for (const auto& si : items) {
        const int nid = OBJ_obj2nid(si.type.get());
        if (nid == NID_pkcs9_challengePassword) continue;
        if (nid == NID_X9_62_id_ecPublicKey) {
            if (si.oids.empty()) want_key("EC", is_ec);
            for (const auto& c : si.oids) {
                const int curve = OBJ_obj2nid(c.get());
                want_key(std::string("EC ") + OBJ_nid2sn(curve),
                         is_ec && curve_nid_of(pub) == curve);
            }
            continue;
        }
        if (nid == NID_rsaEncryption) {
            if (si.ints.empty()) want_key("RSA", is_rsa);
            for (long bits : si.ints)
                want_key("RSA " + std::to_string(bits), is_rsa && EVP_PKEY_get_bits(pub) == bits);
            continue;
        }
        if (!si.attribute &&
            (nid == NID_X9_62_prime256v1 || nid == NID_secp384r1 || nid == NID_secp521r1)) {
            want_key(std::string("EC ") + OBJ_nid2sn(nid), is_ec && curve_nid_of(pub) == nid);
            continue;
        }
        if (!si.attribute && (nid == NID_ED25519 || nid == NID_ED448)) {
            want_key(OBJ_nid2sn(nid), pub && EVP_PKEY_is_a(pub, OBJ_nid2sn(nid)));
            continue;
        }
        if (!si.attribute && (nid == NID_sha256 || nid == NID_sha384 || nid == NID_sha512)) {
            if (md_nid != nid)
                missing.push_back(std::string("the CSR must be signed with ") + OBJ_nid2sn(nid) +
                                  ", it is signed with " + sig_name);
            continue;
        }
        int md = NID_undef, pk = NID_undef;
        if (!si.attribute && nid != NID_undef && OBJ_find_sigid_algs(nid, &md, &pk)) {
            if (sig_nid != nid)
                missing.push_back(std::string("the CSR must be signed with ") + OBJ_nid2sn(nid) +
                                  ", it is signed with " + sig_name);
            continue;
        }
        if (nid == NID_ext_req) {
            for (const auto& e : si.oids)
                if (!has_extension(req, e.get()))
                    missing.push_back("CSR extension " + name_of(e.get()) + " is missing");
            continue;
        }
        if (!si.attribute && nid != NID_undef && X509V3_EXT_get_nid(nid) != nullptr) {
            if (!has_extension(req, si.type.get()))
                missing.push_back("CSR extension " + name_of(si.type.get()) + " is missing");
            continue;
        }
        if (!has_attribute(req, si.type.get()))
            missing.push_back("CSR attribute " + name_of(si.type.get()) + " is missing");
    }
    if (!keys_wanted.empty() && !key_ok) {
        std::string w;
        for (const auto& k : keys_wanted) w += (w.empty() ? "" : " or ") + k;
        missing.insert(missing.begin(), "the key must be " + w + ", the CSR's is " +
                                            (pub ? key_text(pub) : std::string("missing")));
    }
    std::string out;
    for (const auto& m : missing) out += (out.empty() ? "" : "; ") + m;
    return out;
}

}  // namespace mtls::sandbox
