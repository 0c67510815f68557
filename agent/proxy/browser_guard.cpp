#include "agent/proxy/browser_guard.hpp"

#include <algorithm>

#include "common/text.hpp"

namespace mtls::proxy {
namespace {

using text::iequals;

bool listed(const std::vector<std::string>& list, std::string_view v) {
    return std::any_of(list.begin(), list.end(),
                       [&](const std::string& e) { return e == "*" || iequals(e, v); });
}

// The host part of a configured listen address ("127.0.0.1:8480", "[::1]:8480").
std::string_view listen_host(std::string_view a) {
    return host_without_port(a);
}

bool host_allowed(std::string_view host, const RouteTable& routes,
                  const config::Listener& listener) {
    std::string_view name = host_without_port(text::trim_ows(host));
    if (name.size() > 1 && name.back() == '.') name.remove_suffix(1);  // "localhost."
    // The usual names first, without parsing an address.
    if (name == "127.0.0.1" || name == "::1" || iequals(name, "localhost")) return true;
    net::error_code ec;
    auto ip = net::asio::ip::make_address(std::string(name), ec);
    if (!ec && ip.is_loopback()) return true;
    if (!ec)
        for (const auto& a : listener.addresses)
            if (iequals(listen_host(a), name)) return true;
    for (const auto& e : routes.routes())
        if (!e.route.host.empty() && iequals(e.route.host, name)) return true;
    return listed(listener.allowed_hosts, name);
}

std::string quoted(std::string_view v) {
    return "\"" + std::string(v.substr(0, 100)) + "\"";
}

}  // namespace

std::optional<ProxyError> browser_request_refusal(const BrowserFields& in, const Caller& caller,
                                                  const RouteTable& routes,
                                                  const config::Listener& listener) {
    if (caller.via_unix_socket) return std::nullopt;
    const auto& host = in.host;
    if (host && !host_allowed(*host, routes, listener))
        return host_not_allowed(
            "Host " + quoted(*host) +
            " is not this proxy's name (a loopback address, localhost or a route's host): "
            "a web page may be using DNS rebinding to reach the proxy; if local apps do call "
            "it by this name, list it in listener.allowed_hosts");

    const auto& origin = in.origin;
    bool origin_listed = origin && listed(listener.allowed_origins, *origin);
    if (listed(listener.allowed_origins, "*") || origin_listed) return std::nullopt;
    if (origin) {
        std::string_view o = text::trim_ows(*origin);
        bool same_origin = host && o.size() == 7 + host->size() &&
                           iequals(o.substr(0, 7), "http://") && iequals(o.substr(7), *host);
        if (!same_origin)
            return cross_site_request(
                "a request from the web page " + quoted(o) +
                " (Origin): web pages may not call partners with this host's identity; "
                "list the origin in listener.allowed_origins to allow it");
    }
    if (in.sec_fetch_site) {
        std::string_view v = text::trim_ows(*in.sec_fetch_site);
        if (iequals(v, "cross-site") || iequals(v, "same-site"))
            return cross_site_request(
                "a request a browser made for another site (Sec-Fetch-Site: " + std::string(v) +
                "): web pages may not call partners with this host's identity; list the "
                "page's origin in listener.allowed_origins to allow it");
    }
    return std::nullopt;
}

}  // namespace mtls::proxy
