#include "tests/sandbox/revocations.hpp"

#include "common/atomic_file.hpp"
#include "common/ossl_error.hpp"
#include "revocation/cert_info.hpp"
#include "revocation/verdict.hpp"

#include <openssl/x509v3.h>

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>

namespace mtls::sandbox {
namespace {

// YYMMDDHHMMSSZ (UTCTime), as `openssl ca` writes index.txt.
std::string index_time(std::time_t t) {
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[16];
    std::strftime(buf, sizeof buf, "%y%m%d%H%M%SZ", &tm);
    return buf;
}

// The reason names `openssl ca`/`openssl ocsp` read in index.txt (apps/ca.c crl_reasons).
std::string index_reason(int reason) {
    switch (reason) {
        case 1:
            return "keyCompromise";
        case 2:
            return "CACompromise";
        case 3:
            return "affiliationChanged";
        case 4:
            return "superseded";
        case 5:
            return "cessationOfOperation";
        case 6:
            return "certificateHold";
        case 8:
            return "removeFromCRL";
        default:
            return "unspecified";
    }
}

// `openssl ocsp` (3.0) re-reads its index when the file's mtime (whole seconds) changes: a
// file rewritten within the same second as the last one would go unnoticed, so its mtime is
// moved one second past the previous one then.
void bump_index_mtime(const std::filesystem::path& file, std::time_t& last) {
    struct stat st {};
    if (::stat(file.c_str(), &st) != 0) return;
    if (st.st_mtime <= last) {
        const timespec times[2] = {{last + 1, 0}, {last + 1, 0}};
        ::utimensat(AT_FDCWD, file.c_str(), times, 0);
        last = last + 1;
    } else {
        last = st.st_mtime;
    }
}

}  // namespace

Revocations::Revocations(const DevCa& ca, std::chrono::seconds crl_validity)
    : ca_(ca), dir_(ca.files().root.parent_path()), validity_(crl_validity) {
    record(ca.issuing(), true);
}

void Revocations::record(X509* cert, bool by_root) {
    Entry e;
    e.serial = revocation::serial_of(cert);
    char* name = X509_NAME_oneline(X509_get_subject_name(cert), nullptr, 0);
    e.subject = name ? name : "";
    OPENSSL_free(name);
    if (auto t = revocation::to_time_point(X509_get0_notAfter(cert)))
        e.not_after = revocation::Clock::to_time_t(*t);
    e.by_root = by_root;
    std::lock_guard lk(mu_);
    entries_.try_emplace(e.serial, e);
    write_files_locked();
}

std::string Revocations::revoke(const std::string& serial_hex, const std::string& reason) {
    std::string serial = serial_hex;
    std::transform(serial.begin(), serial.end(), serial.begin(),
                   [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    while (serial.size() > 2 && serial.compare(0, 2, "00") == 0) serial.erase(0, 2);
    const int code = reason.empty() ? 0 : revocation::reason_from_name(reason);
    if (code < 0) return "unknown reason \"" + reason + "\" (an RFC 5280 name, e.g. keyCompromise)";
    std::lock_guard lk(mu_);
    auto it = entries_.find(serial);
    if (it == entries_.end()) return "no certificate with serial " + serial + " was issued here";
    if (!it->second.revoked) {
        it->second.revoked = true;
        it->second.reason = code;
        it->second.revoked_at = std::time(nullptr);
    }
    crl_made_[0] = crl_made_[1] = 0;  // re-sign both CRLs now
    write_files_locked();
    return {};
}

void Revocations::write_files_locked() {
    std::string idx[2];
    for (const auto& [serial, e] : entries_) {
        std::string& out = idx[e.by_root ? 1 : 0];
        out += e.revoked ? "R\t" : "V\t";
        out += index_time(e.not_after) + "\t";
        if (e.revoked) out += index_time(e.revoked_at) + "," + index_reason(e.reason);
        out += "\t" + serial + "\tunknown\t" + e.subject + "\n";
    }
    files::write_atomic(dir_ / "index.txt", idx[0], 0644);
    bump_index_mtime(dir_ / "index.txt", index_mtime_[0]);
    files::write_atomic(dir_ / "index.txt.attr", "unique_subject = no\n", 0644);
    files::write_atomic(dir_ / "root-index.txt", idx[1], 0644);
    bump_index_mtime(dir_ / "root-index.txt", index_mtime_[1]);
    files::write_atomic(dir_ / "root-index.txt.attr", "unique_subject = no\n", 0644);
    make_crl_locked(false);
    make_crl_locked(true);
}

void Revocations::make_crl_locked(bool by_root) {
    const std::time_t now = std::time(nullptr);
    const int i = by_root ? 1 : 0;
    if (crl_made_[i] != 0 && now - crl_made_[i] < validity_.count() / 2) return;
    ossl::Owned<X509_CRL, &X509_CRL_free> crl(X509_CRL_new());
    if (!crl || X509_CRL_set_version(crl.get(), X509_CRL_VERSION_2) != 1 ||
        X509_CRL_set_issuer_name(crl.get(),
                                 X509_get_subject_name(by_root ? ca_.root() : ca_.issuing())) != 1)
        throw ossl::Error("cannot start a CRL");
    ossl::Asn1Time last(ASN1_TIME_set(nullptr, now - 1));
    ossl::Asn1Time next(ASN1_TIME_set(nullptr, now + validity_.count()));
    X509_CRL_set1_lastUpdate(crl.get(), last.get());
    X509_CRL_set1_nextUpdate(crl.get(), next.get());
    for (const auto& [serial, e] : entries_) {
        if (!e.revoked || e.by_root != by_root) continue;
        X509_REVOKED* r = X509_REVOKED_new();
        BIGNUM* bn = nullptr;
        BN_hex2bn(&bn, serial.c_str());
        ossl::BigNum owned(bn);
        ossl::Asn1Integer ai(BN_to_ASN1_INTEGER(bn, nullptr));
        ossl::Asn1Time when(ASN1_TIME_set(nullptr, e.revoked_at));
        ASN1_ENUMERATED* reason = ASN1_ENUMERATED_new();
        ASN1_ENUMERATED_set(reason, e.reason);
        X509_REVOKED_set_serialNumber(r, ai.get());
        X509_REVOKED_set_revocationDate(r, when.get());
        X509_REVOKED_add1_ext_i2d(r, NID_crl_reason, reason, 0, 0);
        ASN1_ENUMERATED_free(reason);
        X509_CRL_add0_revoked(crl.get(), r);
    }
    ossl::Asn1Integer number(ASN1_INTEGER_new());
    ASN1_INTEGER_set(number.get(), ++crl_number_);
    X509_CRL_add1_ext_i2d(crl.get(), NID_crl_number, number.get(), 0, 0);
    X509_CRL_sort(crl.get());
    ca_.sign_crl(crl.get(), by_root);
    unsigned char* der = nullptr;
    const int n = i2d_X509_CRL(crl.get(), &der);
    if (n <= 0) throw ossl::Error("cannot encode the CRL");
    crl_[i].assign(reinterpret_cast<char*>(der), static_cast<std::size_t>(n));
    OPENSSL_free(der);
    crl_made_[i] = now;
    files::write_atomic(crl_file(by_root), crl_[i], 0644);
}

std::string Revocations::crl_der(bool by_root) {
    std::lock_guard lk(mu_);
    make_crl_locked(by_root);
    return crl_[by_root ? 1 : 0];
}

nlohmann::json Revocations::to_json() const {
    std::lock_guard lk(mu_);
    nlohmann::json list = nlohmann::json::array();
    for (const auto& [serial, e] : entries_) {
        nlohmann::json j = {{"serial", serial},
                            {"subject", e.subject},
                            {"issuer", e.by_root ? "root" : "issuing"},
                            {"revoked", e.revoked}};
        if (e.revoked) {
            j["reason"] = std::string(revocation::reason_name(e.reason));
            j["revoked_at"] = index_time(e.revoked_at);
        }
        list.push_back(std::move(j));
    }
    return {{"certificates", list},
            {"crl_validity_seconds", validity_.count()},
            {"crl_number", crl_number_}};
}

}  // namespace mtls::sandbox
