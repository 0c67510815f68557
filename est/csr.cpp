#include "est/csr.hpp"

#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/x509v3.h>

#include "common/ossl_error.hpp"
#include "est/csr_extras.hpp"
#include "est/errors.hpp"

namespace mtls::est {
namespace {

using GenNames = ossl::Owned<GENERAL_NAMES, &GENERAL_NAMES_free>;
using GenName = ossl::Owned<GENERAL_NAME, &GENERAL_NAME_free>;
using Ia5 = ossl::Owned<ASN1_IA5STRING, &ASN1_IA5STRING_free>;

void add_name_entry(X509_NAME* name, int nid, const std::string& value) {
    if (value.empty()) return;
    if (X509_NAME_add_entry_by_NID(name, nid, MBSTRING_UTF8,
                                   reinterpret_cast<const unsigned char*>(value.data()),
                                   static_cast<int>(value.size()), -1, 0) != 1)
        throw ossl::Error(std::string("cannot put ") + OBJ_nid2sn(nid) + "=\"" + value +
                          "\" in the CSR subject");
}

void push_ia5_name(GENERAL_NAMES* names, int type, const std::string& value, const char* what) {
    GenName gn(GENERAL_NAME_new());
    Ia5 s(ASN1_IA5STRING_new());
    if (!gn || !s || ASN1_STRING_set(s.get(), value.data(), static_cast<int>(value.size())) != 1)
        throw ossl::Error(std::string("cannot encode ") + what + " \"" + value + "\"");
    GENERAL_NAME_set0_value(gn.get(), type, s.release());
    if (!sk_GENERAL_NAME_push(names, gn.get())) throw ossl::Error("sk_GENERAL_NAME_push");
    (void)gn.release();
}

ossl::X509ExtPtr make_san(const CsrRequest& r) {
    GenNames names(GENERAL_NAMES_new());
    if (!names) throw ossl::Error("GENERAL_NAMES_new");
    for (const auto& dns : r.dns_names) push_ia5_name(names.get(), GEN_DNS, dns, "DNS name");
    for (const auto& ip : r.ip_addresses) {
        GenName gn(a2i_GENERAL_NAME(nullptr, nullptr, nullptr, GEN_IPADD, ip.c_str(), 0));
        if (!gn)
            throw Error(Error::Kind::config,
                        "\"" + ip + "\" is not an IP address: " + ossl::drain_errors());
        if (!sk_GENERAL_NAME_push(names.get(), gn.get())) throw ossl::Error("sk_GENERAL_NAME_push");
        (void)gn.release();
    }
    for (const auto& uri : r.uris) push_ia5_name(names.get(), GEN_URI, uri, "URI");
    for (const auto& mail : r.emails) push_ia5_name(names.get(), GEN_EMAIL, mail, "email address");
    ossl::X509ExtPtr ext(X509V3_EXT_i2d(NID_subject_alt_name, 0, names.get()));
    if (!ext) throw ossl::Error("cannot encode the subjectAltName extension");
    return ext;
}

}  // namespace

ossl::X509ReqPtr build_csr(const CsrRequest& r, EVP_PKEY* key, OSSL_LIB_CTX* libctx,
                           const char* propq) {
    if (!key) throw Error(Error::Kind::config, "CSR: no key");
    ossl::X509ReqPtr req(X509_REQ_new_ex(libctx, propq));
    if (!req) throw ossl::Error("X509_REQ_new_ex");
    if (X509_REQ_set_version(req.get(), X509_REQ_VERSION_1) != 1)
        throw ossl::Error("X509_REQ_set_version");

    ossl::X509ExtStack exts(sk_X509_EXTENSION_new_null());
    if (!exts) throw ossl::Error("sk_X509_EXTENSION_new_null");
    if (r.copy_names_from) {
        if (X509_REQ_set_subject_name(req.get(), X509_get_subject_name(r.copy_names_from)) != 1)
            throw ossl::Error("cannot copy the subject of the current certificate");
        int idx = X509_get_ext_by_NID(r.copy_names_from, NID_subject_alt_name, -1);
        if (idx >= 0) {
            ossl::X509ExtPtr san(X509_EXTENSION_dup(X509_get_ext(r.copy_names_from, idx)));
            if (!san || !sk_X509_EXTENSION_push(exts.get(), san.get()))
                throw ossl::Error("cannot copy the subjectAltName of the current certificate");
            (void)san.release();
        }
    } else {
        if (r.common_name.empty())
            throw Error(Error::Kind::config, "CSR: est.common_name is required");
        X509_NAME* name = X509_REQ_get_subject_name(req.get());
        add_name_entry(name, NID_countryName, r.country);
        add_name_entry(name, NID_stateOrProvinceName, r.state);
        add_name_entry(name, NID_localityName, r.locality);
        add_name_entry(name, NID_organizationName, r.organization);
        for (const auto& ou : r.organizational_units)
            add_name_entry(name, NID_organizationalUnitName, ou);
        add_name_entry(name, NID_commonName, r.common_name);
        add_name_entry(name, NID_serialNumber, r.serial_number);
        if (!r.dns_names.empty() || !r.ip_addresses.empty() || !r.uris.empty() ||
            !r.emails.empty()) {
            auto san = make_san(r);
            if (!sk_X509_EXTENSION_push(exts.get(), san.get()))
                throw ossl::Error("sk_X509_EXTENSION_push");
            (void)san.release();
        }
    }
    append_extra_extensions(exts.get(), r.extra);
    if (sk_X509_EXTENSION_num(exts.get()) > 0 &&
        X509_REQ_add_extensions(req.get(), exts.get()) != 1)
        throw ossl::Error("cannot add the extension request to the CSR");
    if (!r.challenge_password.empty() &&
        X509_REQ_add1_attr_by_NID(
            req.get(), NID_pkcs9_challengePassword, MBSTRING_ASC,
            reinterpret_cast<const unsigned char*>(r.challenge_password.data()),
            static_cast<int>(r.challenge_password.size())) != 1)
        throw ossl::Error("cannot add the challengePassword attribute to the CSR");
    add_extra_attributes(req.get(), r.extra);
    if (X509_REQ_set_pubkey(req.get(), key) != 1)
        throw ossl::Error("cannot put the public key in the CSR");

    // Ed25519/Ed448 sign without a separate digest.
    const bool no_digest = EVP_PKEY_is_a(key, "ED25519") || EVP_PKEY_is_a(key, "ED448");
    ossl::MdCtx mctx(EVP_MD_CTX_new());
    if (!mctx) throw ossl::Error("EVP_MD_CTX_new");
    if (EVP_DigestSignInit_ex(mctx.get(), nullptr, no_digest ? nullptr : r.digest.c_str(), libctx,
                              propq, key, nullptr) != 1)
        throw ossl::Error(
            "cannot start signing the CSR with the " +
            std::string(EVP_PKEY_get0_type_name(key) ? EVP_PKEY_get0_type_name(key) : "given") +
            " key and digest " + r.digest);
    if (X509_REQ_sign_ctx(req.get(), mctx.get()) <= 0)
        throw ossl::Error("signing the CSR failed (is the token key usable for signing?)");
    // Verify a copy decoded from the DER we will send, with the public key as encoded in
    // it (a plain default-provider key): a token key through our provider signs but does
    // not verify, and X509_REQ_set_pubkey keeps the original key object cached.
    std::string der = csr_der(req.get());
    const auto* p = reinterpret_cast<const unsigned char*>(der.data());
    ossl::X509ReqPtr copy(d2i_X509_REQ(nullptr, &p, static_cast<long>(der.size())));
    EVP_PKEY* pub = copy ? X509_REQ_get0_pubkey(copy.get()) : nullptr;
    if (pub == nullptr || X509_REQ_verify(copy.get(), pub) != 1)
        throw ossl::Error("the CSR signature does not verify with the key's public half");
    return req;
}

std::string csr_der(X509_REQ* req) {
    unsigned char* der = nullptr;
    const int n = i2d_X509_REQ(req, &der);
    if (n <= 0) throw ossl::Error("cannot encode the CSR");
    std::string out(reinterpret_cast<char*>(der), static_cast<std::size_t>(n));
    OPENSSL_free(der);
    return out;
}

CsrRequest csr_request(const config::Est& est) {
    CsrRequest r;
    r.country = est.subject_c;
    r.state = est.subject_st;
    r.locality = est.subject_l;
    r.organization = est.subject_o;
    r.organizational_units = est.subject_ou;
    r.common_name = est.subject_cn;
    r.serial_number = est.subject_serial;
    r.dns_names = est.san_dns;
    r.ip_addresses = est.san_ip;
    r.uris = est.san_uri;
    r.emails = est.san_email;
    return r;
}

}  // namespace mtls::est
