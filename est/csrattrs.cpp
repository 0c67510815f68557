#include "est/csrattrs.hpp"

#include <openssl/asn1.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <memory>

#include "common/encoding.hpp"
#include "common/ossl.hpp"
#include "common/ossl_error.hpp"
#include "config/csr_attributes.hpp"
#include "est/errors.hpp"

namespace mtls::est {
namespace {

void free_seq_any(ASN1_SEQUENCE_ANY* s) noexcept {
    sk_ASN1_TYPE_pop_free(s, ASN1_TYPE_free);
}
using SeqAny = ossl::Owned<ASN1_SEQUENCE_ANY, &free_seq_any>;
using Attr = ossl::Owned<X509_ATTRIBUTE, &X509_ATTRIBUTE_free>;
using GenNames = ossl::Owned<GENERAL_NAMES, &GENERAL_NAMES_free>;

Error bad_csrattrs(const std::string& what) {
    return Error(Error::Kind::bad_response, "EST csrattrs response is malformed: " + what);
}

std::string oid_text(const ASN1_OBJECT* obj) {
    char buf[128];
    int nid = OBJ_obj2nid(obj);
    if (nid != NID_undef) return OBJ_nid2sn(nid);
    OBJ_obj2txt(buf, sizeof buf, obj, 1);
    return buf;
}

void add_unique(std::vector<std::string>& v, std::string s) {
    if (std::find(v.begin(), v.end(), s) == v.end()) v.push_back(std::move(s));
}

// A bare hash algorithm OID (id-sha256 …, as libest and RFC 7030 §4.5.2 send): sign with it.
bool digest_from_hash_nid(int nid, std::string& digest) {
    switch (nid) {
        case NID_sha256:
            digest = "SHA256";
            return true;
        case NID_sha384:
            digest = "SHA384";
            return true;
        case NID_sha512:
            digest = "SHA512";
            return true;
        default:
            return false;
    }
}

// A signature algorithm OID names the digest the server wants.
bool digest_from_sig_nid(int nid, std::string& digest) {
    int md = NID_undef, pk = NID_undef;
    if (!OBJ_find_sigid_algs(nid, &md, &pk)) return false;
    if (md == NID_undef) return true;  // Ed25519 / Ed448: no separate digest
    return digest_from_hash_nid(md, digest);
}

std::string general_name_type(int type) {
    switch (type) {
        case GEN_DNS:
            return "DNS";
        case GEN_IPADD:
            return "IP";
        case GEN_URI:
            return "URI";
        case GEN_EMAIL:
            return "email";
        case GEN_DIRNAME:
            return "dirName";
        case GEN_OTHERNAME:
            return "otherName";
        case GEN_RID:
            return "registeredID";
        default:
            return "type " + std::to_string(type);
    }
}

std::string dotted_oid(const ASN1_OBJECT* obj) {
    char buf[256];
    const int n = OBJ_obj2txt(buf, sizeof buf, obj, 1);
    if (n <= 0 || static_cast<std::size_t>(n) >= sizeof buf) return {};
    return buf;
}

void add_requested(CsrAttributes& out, const ASN1_OBJECT* type, bool extension) {
    RequestedItem item{dotted_oid(type), extension};
    if (item.oid.empty()) {
        add_unique(out.unhandled, "OID " + oid_text(type));
        return;
    }
    for (const auto& r : out.requested)
        if (r.oid == item.oid && r.extension == item.extension) return;
    out.requested.push_back(std::move(item));
}

void note_extension(CsrAttributes& out, const ASN1_OBJECT* type) {
    const int nid = OBJ_obj2nid(type);
    add_unique(out.extensions, oid_text(type));
    if (nid != NID_subject_alt_name && nid != NID_key_usage && nid != NID_ext_key_usage &&
        nid != NID_basic_constraints)
        add_requested(out, type, true);
}

// extensionRequest: properly an Extensions SEQUENCE; RFC 7030's own example (an erratum) puts
// bare OIDs there. Take both.
void take_extension_request(CsrAttributes& out, X509_ATTRIBUTE* attr) {
    for (int i = 0; i < X509_ATTRIBUTE_count(attr); ++i) {
        ASN1_TYPE* v = X509_ATTRIBUTE_get0_type(attr, i);
        if (!v) continue;
        if (v->type == V_ASN1_OBJECT) {
            note_extension(out, v->value.object);
            if (OBJ_obj2nid(v->value.object) == NID_subject_alt_name)
                add_unique(out.san_types, "DNS");
            continue;
        }
        if (v->type != V_ASN1_SEQUENCE) {
            add_unique(out.unhandled,
                       "extensionRequest value of ASN.1 type " + std::to_string(v->type));
            continue;
        }
        const unsigned char* p = v->value.sequence->data;
        ossl::X509ExtStack exts(d2i_X509_EXTENSIONS(nullptr, &p, v->value.sequence->length));
        if (!exts) {
            ERR_clear_error();
            add_unique(out.unhandled, "undecodable extensionRequest value");
            continue;
        }
        for (int j = 0; j < sk_X509_EXTENSION_num(exts.get()); ++j) {
            X509_EXTENSION* ext = sk_X509_EXTENSION_value(exts.get(), j);
            const ASN1_OBJECT* type = X509_EXTENSION_get_object(ext);
            note_extension(out, type);
            if (OBJ_obj2nid(type) != NID_subject_alt_name) continue;
            GenNames names(static_cast<GENERAL_NAMES*>(X509V3_EXT_d2i(ext)));
            if (!names) {
                ERR_clear_error();
                add_unique(out.san_types, "DNS");
                continue;
            }
            for (int k = 0; k < sk_GENERAL_NAME_num(names.get()); ++k)
                add_unique(out.san_types,
                           general_name_type(sk_GENERAL_NAME_value(names.get(), k)->type));
        }
    }
}

void take_key_attribute(CsrAttributes& out, int nid, X509_ATTRIBUTE* attr) {
    KeyRequest k;
    k.type = nid == NID_rsaEncryption ? KeyRequest::Type::rsa : KeyRequest::Type::ec;
    bool named = false;
    for (int i = 0; i < X509_ATTRIBUTE_count(attr); ++i) {
        ASN1_TYPE* v = X509_ATTRIBUTE_get0_type(attr, i);
        if (!v) continue;
        if (k.type == KeyRequest::Type::ec && v->type == V_ASN1_OBJECT) {
            KeyRequest c = k;
            c.curve_nid = OBJ_obj2nid(v->value.object);
            if (c.curve_nid == NID_undef)
                add_unique(out.unhandled, "EC curve " + oid_text(v->value.object));
            else
                out.keys.push_back(c), named = true;
        } else if (k.type == KeyRequest::Type::rsa && v->type == V_ASN1_INTEGER) {
            long bits = ASN1_INTEGER_get(v->value.integer);
            KeyRequest c = k;
            if (bits > 0 && bits <= 16384) {
                c.rsa_bits = static_cast<int>(bits);
                out.keys.push_back(c), named = true;
            } else {
                ERR_clear_error();
                add_unique(out.unhandled, "RSA key size " + std::to_string(bits));
            }
        } else {
            add_unique(out.unhandled,
                       "key attribute value of ASN.1 type " + std::to_string(v->type));
        }
    }
    if (!named) out.keys.push_back(k);
}

void take_oid(CsrAttributes& out, const ASN1_OBJECT* obj) {
    const int nid = OBJ_obj2nid(obj);
    switch (nid) {
        case NID_pkcs9_challengePassword:
            out.challenge_password = true;
            return;
        case NID_rsaEncryption:
            out.keys.push_back({KeyRequest::Type::rsa, 0, 0});
            return;
        case NID_X9_62_id_ecPublicKey:
            out.keys.push_back({KeyRequest::Type::ec, 0, 0});
            return;
        case NID_ED25519:
            out.keys.push_back({KeyRequest::Type::ed25519, 0, 0});
            return;
        case NID_ED448:
            out.keys.push_back({KeyRequest::Type::ed448, 0, 0});
            return;
        case NID_X9_62_prime256v1:
        case NID_secp384r1:
        case NID_secp521r1:
            out.keys.push_back({KeyRequest::Type::ec, nid, 0});
            return;
        default:
            break;
    }
    std::string digest;
    if (nid != NID_undef && digest_from_hash_nid(nid, digest)) {
        out.digest = digest;
        return;
    }
    if (nid != NID_undef && digest_from_sig_nid(nid, digest)) {
        if (!digest.empty()) out.digest = digest;
        return;
    }
    if (nid != NID_undef && X509V3_EXT_get_nid(nid) != nullptr) {  // a known extension type
        note_extension(out, obj);
        if (nid == NID_subject_alt_name) add_unique(out.san_types, "DNS");
        return;
    }
    // Any other OID names an attribute type to include (RFC 7030 §4.5.2: macAddress).
    add_requested(out, obj, false);
}

}  // namespace

std::string KeyRequest::describe() const {
    switch (type) {
        case Type::ec:
            return curve_nid ? std::string("EC ") + OBJ_nid2sn(curve_nid) : "EC";
        case Type::rsa:
            return rsa_bits ? "RSA " + std::to_string(rsa_bits) : "RSA";
        case Type::ed25519:
            return "Ed25519";
        case Type::ed448:
            return "Ed448";
    }
    return "?";
}

bool CsrAttributes::empty() const {
    return !challenge_password && keys.empty() && digest.empty() && extensions.empty() &&
           san_types.empty() && requested.empty() && unhandled.empty();
}

std::string CsrAttributes::describe() const {
    auto join = [](const std::vector<std::string>& v) {
        std::string s;
        for (const auto& x : v) s += (s.empty() ? "" : ",") + x;
        return s;
    };
    std::string s = "challengePassword=" + std::string(challenge_password ? "yes" : "no");
    std::vector<std::string> k;
    for (const auto& key : keys) k.push_back(key.describe());
    if (!k.empty()) s += " keys=" + join(k);
    if (!digest.empty()) s += " digest=" + digest;
    if (!extensions.empty()) s += " extensions=" + join(extensions);
    if (!san_types.empty()) s += " san=" + join(san_types);
    std::vector<std::string> r;
    for (const auto& item : requested)
        r.push_back((item.extension ? "ext:" : "attr:") + config::csr_attribute_name(item.oid));
    if (!r.empty()) s += " requested=" + join(r);
    if (!unhandled.empty()) s += " unhandled=" + join(unhandled);
    return s;
}

namespace {
bool padding_byte(char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\0';
}
}  // namespace

std::string RequestedItem::describe() const {
    return std::string(extension ? "CSR extension " : "CSR attribute ") +
           config::csr_attribute_name(oid) + " (" + oid + ")";
}

CsrAttributes parse_csrattrs_der(std::string_view der) {
    return parse_csrattrs_der_padded(der, false);
}

CsrAttributes parse_csrattrs_der_padded(std::string_view der, bool allow_padding) {
    CsrAttributes out;
    const auto* p = reinterpret_cast<const unsigned char*>(der.data());
    SeqAny seq(d2i_ASN1_SEQUENCE_ANY(nullptr, &p, static_cast<long>(der.size())));
    if (!seq) throw bad_csrattrs("not a DER SEQUENCE OF AttrOrOID: " + ossl::drain_errors());
    const auto used =
        static_cast<std::size_t>(p - reinterpret_cast<const unsigned char*>(der.data()));
    const auto rest = der.substr(used);
    if (!rest.empty() && (!allow_padding || !std::all_of(rest.begin(), rest.end(), padding_byte)))
        throw bad_csrattrs("trailing data after the CsrAttrs SEQUENCE");
    for (int i = 0; i < sk_ASN1_TYPE_num(seq.get()); ++i) {
        ASN1_TYPE* item = sk_ASN1_TYPE_value(seq.get(), i);
        if (item->type == V_ASN1_OBJECT) {
            take_oid(out, item->value.object);
            continue;
        }
        if (item->type != V_ASN1_SEQUENCE)
            throw bad_csrattrs("element " + std::to_string(i) +
                               " is neither an OID nor an Attribute");
        // For SEQUENCE, ASN1_TYPE keeps the whole encoding: decode it as an Attribute.
        const unsigned char* q = item->value.sequence->data;
        const long len = item->value.sequence->length;
        Attr attr(d2i_X509_ATTRIBUTE(nullptr, &q, len));
        if (!attr || q != item->value.sequence->data + len)
            throw bad_csrattrs("element " + std::to_string(i) +
                               " is not an Attribute: " + ossl::drain_errors());
        const ASN1_OBJECT* type = X509_ATTRIBUTE_get0_object(attr.get());
        const int nid = OBJ_obj2nid(type);
        if (nid == NID_ext_req || nid == NID_ms_ext_req) {
            take_extension_request(out, attr.get());
        } else if (nid == NID_X9_62_id_ecPublicKey || nid == NID_rsaEncryption) {
            take_key_attribute(out, nid, attr.get());
        } else if (nid == NID_pkcs9_challengePassword) {
            out.challenge_password = true;
        } else if (nid != NID_undef && X509V3_EXT_get_nid(nid) != nullptr) {
            note_extension(out, type);
        } else {
            // An attribute with values (RFC 8951 §3.3): the type is what we can supply.
            add_requested(out, type, false);
        }
    }
    return out;
}

CsrAttributes parse_csrattrs(std::string_view body) {
    // Base64 text, possibly NUL-terminated (a C string) or padded with whitespace.
    std::string_view t = body;
    while (!t.empty() && padding_byte(t.front())) t.remove_prefix(1);
    while (!t.empty() && padding_byte(t.back())) t.remove_suffix(1);
    if (t.empty()) return {};
    if (auto der = encoding::base64_decode(t)) return parse_csrattrs_der(*der);
    // Raw DER: its own length says where it ends; only NULs/whitespace may follow.
    if (static_cast<unsigned char>(body.front()) == 0x30)
        return parse_csrattrs_der_padded(body, true);
    throw bad_csrattrs("the body is neither base64 nor DER");
}

std::string key_mismatch(const CsrAttributes& attrs, EVP_PKEY* key) {
    if (attrs.keys.empty() || !key) return {};
    std::string have;
    for (const auto& k : attrs.keys) {
        switch (k.type) {
            case KeyRequest::Type::ec: {
                if (!EVP_PKEY_is_a(key, "EC")) break;
                if (!k.curve_nid) return {};
                char group[64] = {};
                size_t len = 0;
                if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group,
                                                   sizeof group, &len) == 1 &&
                    OBJ_txt2nid(group) == k.curve_nid)
                    return {};
                if (OBJ_sn2nid(group) == k.curve_nid || EC_curve_nist2nid(group) == k.curve_nid)
                    return {};
                break;
            }
            case KeyRequest::Type::rsa:
                if (EVP_PKEY_is_a(key, "RSA") &&
                    (!k.rsa_bits || EVP_PKEY_get_bits(key) == k.rsa_bits))
                    return {};
                break;
            case KeyRequest::Type::ed25519:
                if (EVP_PKEY_is_a(key, "ED25519")) return {};
                break;
            case KeyRequest::Type::ed448:
                if (EVP_PKEY_is_a(key, "ED448")) return {};
                break;
        }
    }
    ERR_clear_error();
    std::string wanted;
    for (const auto& k : attrs.keys) wanted += (wanted.empty() ? "" : " or ") + k.describe();
    return "the EST server asks for a " + wanted + " key, ours is " +
           std::string(EVP_PKEY_get0_type_name(key) ? EVP_PKEY_get0_type_name(key) : "?") + " " +
           std::to_string(EVP_PKEY_get_bits(key)) + " bits";
}

}  // namespace mtls::est
