#include "tests/sandbox/clients.hpp"

#include "common/atomic_file.hpp"
#include "common/ossl.hpp"
#include "tests/sandbox/jwt.hpp"
#include "tests/sandbox/pem.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <stdexcept>

namespace mtls::sandbox {
namespace {

using GeneralNames = ossl::Owned<GENERAL_NAMES, &GENERAL_NAMES_free>;

// Splits an RFC 4514 DN at unescaped commas, normalizes each RDN (type upper-cased,
// spaces around '=' and ',' dropped).
std::vector<std::string> rdns(const std::string& dn) {
    std::vector<std::string> out;
    std::string cur;
    for (size_t i = 0; i < dn.size(); ++i) {
        char c = dn[i];
        if (c == '\\' && i + 1 < dn.size()) {
            cur += c;
            cur += dn[++i];
        } else if (c == ',' || c == ';') {
            out.push_back(cur);
            cur.clear();
        } else {
            cur += c;
        }
    }
    out.push_back(cur);
    for (auto& r : out) {
        auto eq = r.find('=');
        auto trim = [](std::string s) {
            while (!s.empty() && s.back() == ' ') s.pop_back();
            size_t i = 0;
            while (i < s.size() && s[i] == ' ') ++i;
            return s.substr(i);
        };
        std::string type = trim(r.substr(0, eq));
        std::string value = eq == std::string::npos ? "" : trim(r.substr(eq + 1));
        std::transform(type.begin(), type.end(), type.begin(), ::toupper);
        std::transform(value.begin(), value.end(), value.begin(), ::tolower);
        r = type + "=" + value;
    }
    return out;
}

std::vector<std::string> strings(const nlohmann::json& j, const char* key) {
    std::vector<std::string> out;
    if (!j.contains(key)) return out;
    const auto& v = j[key];
    if (v.is_string())
        out.push_back(v.get<std::string>());
    else if (v.is_array())
        for (auto& e : v) out.push_back(e.get<std::string>());
    else
        throw std::runtime_error(std::string(key) + ": expected a string or an array");
    return out;
}

std::string gen_string(const ASN1_STRING* s) {
    return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                       static_cast<size_t>(ASN1_STRING_length(s)));
}

bool san_matches(X509* cert, int type, const std::string& want) {
    GeneralNames names(static_cast<GENERAL_NAMES*>(
        X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
    if (!names) return false;
    std::string ip_bytes;
    if (type == GEN_IPADD) {
        unsigned char buf[16];
        if (inet_pton(AF_INET, want.c_str(), buf) == 1)
            ip_bytes.assign(reinterpret_cast<char*>(buf), 4);
        else if (inet_pton(AF_INET6, want.c_str(), buf) == 1)
            ip_bytes.assign(reinterpret_cast<char*>(buf), 16);
        else
            return false;
    }
    for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
        const GENERAL_NAME* g = sk_GENERAL_NAME_value(names.get(), i);
        if (g->type != type) continue;
        std::string v = gen_string(g->d.ia5);  // d.ia5 / d.ip share the ASN1_STRING layout
        if (type == GEN_IPADD) {
            if (v == ip_bytes) return true;
        } else if (type == GEN_DNS || type == GEN_EMAIL) {
            if (v.size() == want.size() &&
                std::equal(v.begin(), v.end(), want.begin(),
                           [](char a, char b) { return ::tolower(a) == ::tolower(b); }))
                return true;
        } else if (v == want) {
            return true;
        }
    }
    return false;
}

}  // namespace

bool dn_matches(const std::string& registered, const X509_NAME* name) {
    auto want = rdns(registered);
    auto have = rdns(subject_rfc4514(name));  // most specific first
    if (want == have) return true;
    std::reverse(have.begin(), have.end());
    return want == have;
}

ClientRegistry ClientRegistry::open_registration() {
    ClientRegistry r;
    r.open_ = true;
    return r;
}

ClientRegistry ClientRegistry::from_json(const nlohmann::json& j) {
    ClientRegistry r;
    if (!j.is_object() || !j.contains("clients") || !j["clients"].is_array())
        throw std::runtime_error("expected {\"clients\": [...]}");
    for (auto& e : j["clients"]) {
        Client c;
        c.client_id = e.at("client_id").get<std::string>();
        auto method = e.value("token_endpoint_auth_method", std::string("tls_client_auth"));
        if (method == "self_signed_tls_client_auth")
            c.self_signed = true;
        else if (method != "tls_client_auth")
            throw std::runtime_error(c.client_id +
                                     ": token_endpoint_auth_method must be "
                                     "tls_client_auth or self_signed_tls_client_auth");
        c.subject_dn = e.value("tls_client_auth_subject_dn", "");
        c.san_dns = e.value("tls_client_auth_san_dns", "");
        c.san_uri = e.value("tls_client_auth_san_uri", "");
        c.san_ip = e.value("tls_client_auth_san_ip", "");
        c.san_email = e.value("tls_client_auth_san_email", "");
        c.x5t_s256 = strings(e, "x5t#S256");
        c.jkt = strings(e, "jkt");
        if (e.contains("jwks"))
            for (auto& k : e["jwks"].at("keys"))
                if (auto t = jwk_thumbprint(k)) c.jkt.push_back(*t);
        if (e.contains("scope")) {
            std::vector<std::string> s;
            std::string all = e["scope"].get<std::string>(), cur;
            for (char ch : all + " ") {
                if (ch == ' ') {
                    if (!cur.empty()) s.push_back(cur);
                    cur.clear();
                } else {
                    cur += ch;
                }
            }
            c.scopes = s;
        }
        if (e.contains("scope_policy")) {
            auto policy = e["scope_policy"].get<std::string>();
            if (policy != "reject" && policy != "narrow")
                throw std::runtime_error("client " + c.client_id +
                                         ": scope_policy must be \"reject\" or \"narrow\"");
            c.narrow_scope = policy == "narrow";
        }
        c.resources = strings(e, "resources");
        if (e.contains("grant_types")) c.grant_types = strings(e, "grant_types");
        int ways = !c.subject_dn.empty() + !c.san_dns.empty() + !c.san_uri.empty() +
                   !c.san_ip.empty() + !c.san_email.empty();
        if (!c.self_signed && ways != 1)
            throw std::runtime_error(c.client_id +
                                     ": tls_client_auth needs exactly one of "
                                     "tls_client_auth_subject_dn / _san_dns / "
                                     "_san_uri / _san_ip / _san_email");
        if (c.self_signed && c.x5t_s256.empty() && c.jkt.empty())
            throw std::runtime_error(c.client_id +
                                     ": self_signed_tls_client_auth needs x5t#S256, jkt or jwks");
        r.clients_.push_back(std::move(c));
    }
    return r;
}

ClientRegistry ClientRegistry::from_file(const std::string& path) {
    auto j = nlohmann::json::parse(files::read_all(path, 4u << 20), nullptr, false);
    if (j.is_discarded()) throw std::runtime_error("clients file " + path + " is not JSON");
    try {
        return from_json(j);
    } catch (const std::exception& e) {
        throw std::runtime_error("clients file " + path + ": " + e.what());
    }
}

std::optional<Client> ClientRegistry::find(const std::string& client_id) const {
    for (auto& c : clients_)
        if (c.client_id == client_id) return c;
    if (open_ && !client_id.empty()) {
        Client c;
        c.client_id = client_id;
        return c;
    }
    return std::nullopt;
}

std::string ClientRegistry::authenticate(const Client& c, X509* cert, bool chains_to_ca) {
    if (!cert) return "no TLS client certificate was presented";
    if (c.self_signed) {
        auto x5t = x5t_s256(cert);
        if (std::find(c.x5t_s256.begin(), c.x5t_s256.end(), x5t) != c.x5t_s256.end()) return "";
        if (auto jwk = public_jwk(X509_get0_pubkey(cert))) {
            auto t = jwk_thumbprint(*jwk);
            if (t && std::find(c.jkt.begin(), c.jkt.end(), *t) != c.jkt.end()) return "";
        }
        return "certificate does not match the client's registered certificate or key";
    }
    if (!chains_to_ca) return "certificate is not issued by a trusted CA (tls_client_auth)";
    bool any = c.subject_dn.empty() && c.san_dns.empty() && c.san_uri.empty() && c.san_ip.empty() &&
               c.san_email.empty();
    if (any) return "";  // open registration
    if (!c.subject_dn.empty())
        return dn_matches(c.subject_dn, X509_get_subject_name(cert))
                   ? ""
                   : "certificate subject " + subject_rfc4514(X509_get_subject_name(cert)) +
                         " is not the registered " + c.subject_dn;
    if (!c.san_dns.empty())
        return san_matches(cert, GEN_DNS, c.san_dns) ? "" : "no dNSName SAN " + c.san_dns;
    if (!c.san_uri.empty())
        return san_matches(cert, GEN_URI, c.san_uri) ? "" : "no URI SAN " + c.san_uri;
    if (!c.san_ip.empty())
        return san_matches(cert, GEN_IPADD, c.san_ip) ? "" : "no iPAddress SAN " + c.san_ip;
    return san_matches(cert, GEN_EMAIL, c.san_email) ? "" : "no rfc822Name SAN " + c.san_email;
}

}  // namespace mtls::sandbox
