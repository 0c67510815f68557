// The partner sandbox as a child process for the token tests, and a small test PKI
// (in-memory EC keys; certificates signed by the sandbox's issuing CA, or self-signed).
#pragma once

#include "agent/identity/identity.hpp"
#include "common/http_client.hpp"
#include "tests/support/sandbox_process.hpp"

#include <sys/types.h>
#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <vector>

namespace mtls::token::testing {

std::string make_temp_dir();

class Sandbox {
  public:
    // Starts partner-sandbox (tests/support's SandboxProcess) with the given extra flags;
    // waits (polling, 30 s deadline) for its info file. Throws std::runtime_error on failure.
    Sandbox(const std::string& dir, const std::vector<std::string>& extra_args);
    Sandbox(const Sandbox&) = delete;
    Sandbox& operator=(const Sandbox&) = delete;

    const nlohmann::json& info() const { return info_; }
    std::string issuer() const { return info_["as"]["issuer"]; }
    std::string ca_bundle() const { return info_["ca"]["bundle"]; }
    std::string ca_dir() const { return info_["ca"]["dir"]; }
    std::string api_data_url() const { return info_["api"]["data"]; }

    // /sandbox/* on the API port, without a client certificate.
    nlohmann::json stats() const;
    std::uint64_t token_requests() const;
    void set_mode(const std::string& query) const;  // e.g. "as=slow&delay_ms=3000"
    void reset_stats() const;

    // GET /api/secure/data with `token` over a connection presenting `id`'s certificate.
    http::Response call_api(const identity::Identity& id, const std::string& token) const;

    // MTLS_PARTNER_SANDBOX if set, else the one built in this tree.
    static std::string binary();

  private:
    std::unique_ptr<test::SandboxProcess> process_;
    nlohmann::json info_;
};

// A fresh P-256 key and a client certificate for it: issued by the sandbox's issuing CA
// (ca_dir/issuing-ca.{pem,key}) or self-signed (ca_dir empty).
identity::IdentityPtr make_identity(const std::string& ca_dir, const std::string& cn,
                                    std::uint64_t generation);
std::string cert_pem(const identity::Identity& id);

}  // namespace mtls::token::testing
