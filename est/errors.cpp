#include "est/errors.hpp"

#include <vector>

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
            return "the server rejected the request; its text says why";
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

namespace {

std::string join(const std::vector<std::string>& v, const char* sep) {
    std::string out;
    for (const auto& s : v) out += (out.empty() ? "" : sep) + s;
    return out;
}

std::string unauthorized_hint(const RequestContext& c, const http::Response& r) {
    std::string wants;
    if (!r.auth_offered_names.empty())
        wants =
            "the server wants HTTP " + join(r.auth_offered_names, " or HTTP ") + " authentication";
    else if (r.header("WWW-Authenticate"))
        wants = "the server wants HTTP authentication (WWW-Authenticate: " +
                std::string(*r.header("WWW-Authenticate")) + ")";
    else
        wants = "the server refused to authenticate us (no WWW-Authenticate challenge)";
    if (c.client_certificate && c.operation == "simpleenroll")
        wants +=
            "; it did not accept our client certificate alone (is the bootstrap "
            "certificate, est.bootstrap_cert, from a CA the server trusts?)";
    else if (c.client_certificate)
        wants += " in addition to our certificate";
    else
        wants += "; no client certificate was presented";
    if (!c.credentials_configured)
        return wants +
               ", and no credentials are configured: set est.basic_credentials (a file "
               "holding user:password; it answers Basic and Digest challenges)";
    if (r.credentials_sent)
        return wants +
               "; the credentials of est.basic_credentials were offered and refused: "
               "check the user and password in that file (and that this account may " +
               c.operation + ")";
    const bool usable = (r.auth_offered & (http::auth_basic | http::auth_digest)) != 0;
    if (!usable && !r.auth_offered_names.empty())
        return wants + "; we answer only Basic and Digest, so est.basic_credentials was not sent";
    if (c.auth_setting == "digest" && (r.auth_offered & http::auth_digest) == 0)
        return wants +
               "; with est.auth = \"digest\" the password is only sent with Digest: set "
               "est.auth = \"basic\" if the server may have it with Basic";
    return wants + "; est.basic_credentials was configured but not sent";
}

std::string bad_request_hint(const RequestContext& c) {
    if (c.key.empty())
        return "the server refused our " + c.operation + " request; its text above says why";
    std::string sent =
        "we sent a CSR for a " + c.key + " key signed with " + c.digest + ", subject \"" +
        c.subject + "\", " +
        (c.pop.empty() ? std::string("no proof-of-possession challengePassword")
                       : "proof-of-possession (" + c.pop + ") in challengePassword") +
        ", as base64 lines (RFC 7030 §4.2.1)";
    return "the server refused our " + c.operation + " request: " + sent +
           "; its text above says which part it did not accept (key type/digest: [key] type and "
           "the server's csrattrs; subject: est.common_name/est.dns_names)";
}

}  // namespace

Error status_error(const RequestContext& context, const http::Response& response) {
    std::string msg =
        "EST " + context.operation + " failed: server said " + std::to_string(response.status);
    std::string text = response.body_excerpt(200);
    if (!text.empty()) msg += " (\"" + text + "\")";
    std::string hint;
    if (response.status == 400)
        hint = bad_request_hint(context);
    else if (response.status == 401)
        hint = unauthorized_hint(context, response);
    else
        hint = status_hint(response.status);
    msg += " — " + hint;
    return Error(Error::Kind::http_status, msg, response.status);
}

Error transport_error(std::string_view operation, const http::Error& e) {
    // e.what() is "<METHOD> <url> failed: <why>" already.
    std::string msg = "EST " + std::string(operation) + ": " + e.what();
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
