// The sandbox's development CA: a root and an issuing CA (EC P-256), created in a directory
// at start or reused from it. Issues the partner server's TLS certificate and the EST
// client certificates, and verifies client certificates against itself.
#pragma once

#include "common/ossl.hpp"

#include <chrono>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace mtls::sandbox {

enum class Usage { server, client };

struct CaFiles {
    std::filesystem::path root;         // root-ca.pem
    std::filesystem::path issuing;      // issuing-ca.pem
    std::filesystem::path bundle;       // ca-bundle.pem: issuing + root (what clients trust)
    std::filesystem::path server_cert;  // server.pem: leaf + issuing CA
    std::filesystem::path server_key;   // server.key
};

// Where relying parties find revocation information (--ocsp-url, --crl-port). Empty: the
// extension is left out. Certificates the issuing CA issues carry AIA OCSP = ocsp and
// CRL DP = issuing_crl; the issuing CA itself (made when the directory is new) carries
// CRL DP = root_crl (the root has no OCSP responder: like many real roots, CRL only).
struct RevocationUrls {
    std::string ocsp;
    std::string issuing_crl;
    std::string root_crl;
};

class DevCa {
  public:
    // Loads root-ca.{pem,key} and issuing-ca.{pem,key} from dir, or creates them, named
    // "<name> root CA" and "<name> issuing CA".
    static DevCa open(const std::filesystem::path& dir, const RevocationUrls& urls = {},
                      const std::string& name = "mtls-agent sandbox");

    X509* root() const { return root_.get(); }
    X509* issuing() const { return issuing_.get(); }
    const CaFiles& files() const { return files_; }
    bool created() const { return created_; }

    // Issues a certificate for `pub`, signed by the issuing CA. `sans` may be null.
    // notBefore = now + not_before_offset (negative: in the past), notAfter = notBefore +
    // validity.
    ossl::X509Ptr issue(EVP_PKEY* pub, const X509_NAME* subject, const GENERAL_NAMES* sans,
                        std::chrono::seconds validity, Usage usage,
                        std::chrono::seconds not_before_offset = std::chrono::seconds(0)) const;

    // Issues a fresh server certificate (localhost, 127.0.0.1, ::1) and writes
    // server.pem/server.key; returns the key and the chain [leaf, issuing].
    void make_server_identity(ossl::PKey& key, std::vector<ossl::X509Ptr>& chain) const;

    // A delegated OCSP responder certificate (id-kp-OCSPSigning, id-pkix-ocsp-nocheck)
    // issued by the issuing CA; writes ocsp-signer.pem/ocsp-signer.key next to the CA.
    void make_ocsp_signer(ossl::PKey& key, ossl::X509Ptr& cert) const;
    // Signs a CRL with the issuing CA's key (or the root's), adding the AKI.
    void sign_crl(X509_CRL* crl, bool by_root) const;
    const RevocationUrls& revocation_urls() const { return urls_; }
    // Called with every certificate issue() and make_server_identity() make (the
    // revocation index); may be empty.
    std::function<void(X509*)> on_issue;

    // True when `leaf` chains to this CA and is valid now; else sets `why`.
    bool verify(X509* leaf, STACK_OF(X509) * untrusted, std::string& why) const;
    // A new store holding only the root: like the partners and authorization servers our
    // users meet, the sandbox trusts the root alone, so a client must send the issuing CA in
    // its chain (RFC 8446 §4.4.2).
    ossl::X509StorePtr root_store() const;

  private:
    ossl::X509Ptr root_, issuing_;
    ossl::PKey root_key_, issuing_key_;
    CaFiles files_;
    RevocationUrls urls_;
    bool created_ = false;
};

// Verifies `leaf` against `store` for TLS client use; sets `why` on failure.
bool verify_against(X509_STORE* store, X509* leaf, STACK_OF(X509) * untrusted, std::string& why);

}  // namespace mtls::sandbox
