// OAuth client registrations of the sandbox AS (RFC 8705 §2.1.2 / §2.2.2 metadata names),
// read from a JSON file (--clients):
//   {"clients": [
//     {"client_id": "agent-1", "token_endpoint_auth_method": "tls_client_auth",
//      "tls_client_auth_subject_dn": "CN=host-17.example,O=Example Corp"},
//     {"client_id": "agent-2", "token_endpoint_auth_method": "tls_client_auth",
//      "tls_client_auth_san_dns": "host-17.example"},      (or _san_uri, _san_ip, _san_email)
//     {"client_id": "agent-3", "token_endpoint_auth_method": "self_signed_tls_client_auth",
//      "x5t#S256": "<base64url SHA-256 of the certificate DER>"},
//     {"client_id": "agent-4", "token_endpoint_auth_method": "self_signed_tls_client_auth",
//      "jkt": "<RFC 7638 thumbprint of the public key>"}     (or "jwks": {"keys": [...]})
//   ]}
// Optional per client: "scope": "a b" (allowed scopes; default any), "scope_policy":
// "reject" (default: a scope outside "scope" is invalid_scope) or "narrow" (the grant is the
// allowed part of the request and the answer names it, RFC 6749 §3.3 — what Keycloak-style
// servers do with optional scopes), "resources": [...]
// (allowed RFC 8707 resources; default any), "grant_types": [...] (default
// ["client_credentials"]).
// Without a file, registration is open: any client_id authenticates with tls_client_auth
// by presenting a certificate issued by the sandbox CA.
#pragma once

#include <openssl/x509.h>
#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

namespace mtls::sandbox {

struct Client {
    std::string client_id;
    bool self_signed = false;  // self_signed_tls_client_auth (else tls_client_auth)
    std::string subject_dn, san_dns, san_uri, san_ip, san_email;
    std::vector<std::string> x5t_s256, jkt;
    std::optional<std::vector<std::string>> scopes;
    bool narrow_scope = false;  // "scope_policy": "narrow"
    std::vector<std::string> resources;
    std::vector<std::string> grant_types{"client_credentials"};
};

class ClientRegistry {
  public:
    static ClientRegistry open_registration();
    static ClientRegistry from_json(const nlohmann::json& j);  // throws std::runtime_error
    static ClientRegistry from_file(const std::string& path);

    bool open() const { return open_; }
    // The registration, or for open registration a synthesized tls_client_auth client.
    std::optional<Client> find(const std::string& client_id) const;

    // Checks the connection's certificate against the registration. `chains_to_ca` tells
    // whether the certificate verified against the sandbox CA (needed for tls_client_auth).
    // Returns "" when it matches, else why not.
    static std::string authenticate(const Client& c, X509* cert, bool chains_to_ca);

  private:
    bool open_ = false;
    std::vector<Client> clients_;
};

// Case- and space-insensitive comparison of RFC 4514 DNs, either RDN order.
bool dn_matches(const std::string& registered, const X509_NAME* name);

}  // namespace mtls::sandbox
