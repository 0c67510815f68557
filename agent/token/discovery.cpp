#include "agent/token/discovery.hpp"

#include "agent/token/errors.hpp"
#include "agent/token/token_request.hpp"
#include "common/log.hpp"

namespace mtls::token {

std::variant<AsMetadata, TokenError> discover(const std::string& issuer,
                                              const http::ServerTrust& trust,
                                              std::chrono::milliseconds timeout) {
    auto urls = metadata_urls(issuer);
    if (urls.empty())
        return make_error(errc::config_error, "oauth.issuer \"" + issuer +
                                                  "\" is not an https URL without query or "
                                                  "fragment; discovery is impossible");
    std::string tried;
    for (const auto& url : urls) {
        try {
            http::Options o;
            o.trust = trust;
            o.timeout = timeout;
            o.connect_timeout =
                std::min<std::chrono::milliseconds>(timeout, std::chrono::milliseconds(10000));
            o.max_response_bytes = 256 * 1024;
            http::Request req;
            req.url = url;
            req.log_part = "oauth";
            req.headers = {{"Accept", "application/json"}};
            auto resp = http::fetch(std::move(o), req);
            if (resp.status >= 400 && resp.status < 500) {
                tried +=
                    (tried.empty() ? "" : ", ") + url + " → HTTP " + std::to_string(resp.status);
                continue;
            }
            if (resp.status != 200)
                return make_error(errc::discovery_failed,
                                  "AS metadata discovery: " + url + " answered HTTP " +
                                      std::to_string(resp.status) +
                                      " — the AS has a problem; retrying with backoff");
            auto parsed = parse_metadata(resp.body, issuer);
            if (auto* why = std::get_if<std::string>(&parsed))
                return make_error(errc::discovery_failed,
                                  "AS metadata discovery: " + url + ": " + *why);
            auto& m = std::get<AsMetadata>(parsed);
            log::info("oauth.discovered", {{"issuer", issuer},
                                           {"metadata", url},
                                           {"token_endpoint", m.token_endpoint},
                                           {"mtls_alias", m.from_mtls_alias}});
            return std::move(m);
        } catch (const http::Error& e) {
            auto err = from_http_error(e, "AS metadata discovery");
            if (err.code == errc::config_error) err.code = errc::discovery_failed;
            return err;
        } catch (const std::exception& e) {
            return make_error(errc::discovery_failed,
                              "AS metadata discovery (" + url + "): " + e.what());
        }
    }
    return make_error(errc::discovery_failed,
                      "AS metadata discovery of " + issuer + ": no metadata document (" + tried +
                          ") — check oauth.issuer or set oauth.token_endpoint");
}

}  // namespace mtls::token
