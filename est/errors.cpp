#include "est/errors.hpp"

namespace mtls::est {

Error::Error(Kind kind, const std::string& message, long status)
    : std::runtime_error(message), kind_(kind), status_(status) {}

bool Error::retryable() const {
    switch (kind_) {
        case Kind::transport:
        case Kind::pending:
            return true;
        case Kind::http_status:
            return status_ >= 500 || status_ == 429 || status_ == 408;
        default:
            return false;
    }
}

std::string status_hint(long status) {
    switch (status) {
        case 400:
            return "the server rejected the request; check the CSR contents (est.common_name, "
                   "est.dns_names) and the server's CSR attributes";
        case 401:
            return "check est.basic_credentials / the bootstrap certificate";
        case 403:
            return "the server refused this client; check that the account or the client "
                   "certificate is allowed to enroll for this CA (est.ca_label)";
        case 404:
            return "check est.server and est.ca_label";
        case 409:
            return "the server reports a conflict with an existing certificate";
        case 413:
            return "the server refused the request size";
        case 415:
            return "the server does not accept our content type (application/pkcs10)";
        case 429:
            return "the server is rate limiting; retrying later";
        default:
            break;
    }
    if (status >= 500) return "the EST server failed; retrying later";
    return "unexpected status from the EST server";
}

Error status_error(std::string_view operation, const http::Response& response) {
    std::string msg =
        "EST " + std::string(operation) + " failed: server said " + std::to_string(response.status);
    std::string text = response.body_excerpt(200);
    if (!text.empty()) msg += " (\"" + text + "\")";
    msg += " — " + status_hint(response.status);
    return Error(Error::Kind::http_status, msg, response.status);
}

Error transport_error(std::string_view operation, const http::Error& e) {
    std::string msg = "EST " + std::string(operation) + " failed: " + e.what();
    switch (e.kind()) {
        case http::Error::Kind::untrusted_server:
            return Error(Error::Kind::untrusted_server,
                         msg + " — check est.trust_anchor / est.pinned_sha256 and est.server");
        case http::Error::Kind::too_large:
            return Error(Error::Kind::bad_response, msg +
                                                        " — raise est.max_response_bytes if the "
                                                        "server legitimately sends this much");
        case http::Error::Kind::invalid_request:
            return Error(Error::Kind::config, msg + " — check est.server");
        case http::Error::Kind::tls:
            return Error(Error::Kind::transport,
                         msg +
                             " — TLS handshake failed; check that est.server speaks TLS 1.2+ and "
                             "accepts our client certificate");
        default:
            return Error(Error::Kind::transport, msg + " — check est.server; retrying later");
    }
}

}  // namespace mtls::est
