// Requests a web browser makes on behalf of a page the host's user opened. Every page can
// reach a loopback TCP port; without this guard it could call partners with this host's
// identity, directly (a cross-site fetch or form) or through DNS rebinding (the page's own
// name re-pointed to 127.0.0.1, so the browser sends Host: attacker.example). On TCP
// listeners (Unix-socket callers are never browsers):
//  - Host must be a loopback IP literal, "localhost", an address the listener is configured
//    on, a route's `host`, or listed in listener.allowed_hosts ("*": any) -> else 403
//    host_not_allowed. A request without Host (HTTP/1.0) passes: browsers always send one.
//  - Origin, when sent, must be the proxy's own origin (http://<Host>) or listed in
//    listener.allowed_origins ("*": no browser checks) -> else 403 cross_site_request;
//    "null" (sandboxed frames, file: pages) is cross-site.
//  - Sec-Fetch-Site: cross-site or same-site (another local port is same-site) -> 403
//    cross_site_request, unless the Origin is listed in listener.allowed_origins.
#pragma once

#include "agent/net/asio.hpp"
#include "agent/proxy/errors.hpp"
#include "agent/proxy/router.hpp"
#include "config/config.hpp"

#include <optional>

namespace mtls::proxy {

// The request's fields the guard looks at (the first of each name; nullopt: absent).
struct BrowserFields {
    std::optional<std::string_view> host, origin, sec_fetch_site;
};

std::optional<ProxyError> browser_request_refusal(const BrowserFields& in, const Caller& caller,
                                                  const RouteTable& routes,
                                                  const config::Listener& listener);

}  // namespace mtls::proxy
