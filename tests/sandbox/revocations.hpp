// The sandbox CA's revocation state: every certificate it issued, which are revoked (with
// reason and time), kept as OpenSSL `ca`-style index files so that OpenSSL's own responder
// (`openssl ocsp -index index.txt -CA issuing-ca.pem -rsigner ocsp-signer.pem …`) answers
// for them, and the CRLs (DER, as real CAs publish them) of the issuing CA and of the root
// (which covers the issuing CA).
//
// Files in the CA directory, rewritten atomically on every change:
//   index.txt (+ index.txt.attr "unique_subject = no")  certificates of the issuing CA
//   root-index.txt (+ .attr)                            certificates of the root (the
//                                                       issuing CA)
//   issuing.crl, root.crl                               the current CRLs, DER
#pragma once

#include "common/ossl.hpp"
#include "tests/sandbox/ca.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <ctime>
#include <filesystem>
#include <map>
#include <mutex>
#include <string>

namespace mtls::sandbox {

class Revocations {
  public:
    // crl_validity: each CRL's nextUpdate - thisUpdate; a CRL is re-signed when half of it
    // has passed (or on a revocation).
    Revocations(const DevCa& ca, std::chrono::seconds crl_validity);

    // Records an issued certificate (valid). by_root: issued by the root (the issuing CA).
    void record(X509* cert, bool by_root = false);
    // Revokes a recorded certificate by serial (hex, any case); reason is an RFC 5280 name
    // ("keyCompromise"…, default "unspecified"). Returns "" or what is wrong.
    std::string revoke(const std::string& serial_hex, const std::string& reason);
    // The current DER CRL of the issuing CA (by_root false) or of the root.
    std::string crl_der(bool by_root);
    nlohmann::json to_json() const;

    std::filesystem::path index_file() const { return dir_ / "index.txt"; }
    std::filesystem::path root_index_file() const { return dir_ / "root-index.txt"; }
    std::filesystem::path crl_file(bool by_root) const {
        return dir_ / (by_root ? "root.crl" : "issuing.crl");
    }

  private:
    struct Entry {
        std::string serial;   // upper-case hex, as BN_bn2hex (what `openssl ocsp` looks up)
        std::string subject;  // /O=…/CN=… (X509_NAME_oneline)
        std::time_t not_after = 0;
        bool by_root = false;
        bool revoked = false;
        int reason = 0;
        std::time_t revoked_at = 0;
    };
    void write_files_locked();
    void make_crl_locked(bool by_root);

    const DevCa& ca_;
    std::filesystem::path dir_;
    std::chrono::seconds validity_;
    mutable std::mutex mu_;
    std::map<std::string, Entry> entries_;
    std::string crl_[2];
    std::time_t crl_made_[2] = {0, 0};
    long crl_number_ = 0;
    std::time_t index_mtime_[2] = {0, 0};  // last mtime given to index.txt, root-index.txt
};

}  // namespace mtls::sandbox
