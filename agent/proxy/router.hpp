// Where a request goes. A newcomer's one look:
//   1. A route with `host` matches when the request's Host (port stripped, case-insensitive)
//      equals it; the whole path is appended to the upstream's base path.
//   2. Otherwise the route with the longest `path_prefix` that starts the path wins
//      ("/partner-a/" also takes "/partner-a"); the prefix is replaced by the upstream's
//      base path: /partner-a/v1/orders?x=1 -> https://api.partner-a.example/v2/v1/orders?x=1
//   3. Nothing matches: 404 no_route (the body lists nothing secret).
// Routes with allowed_uids/allowed_gids only take Unix-socket callers whose SO_PEERCRED uid
// or gid is listed; TCP callers get 403.
#pragma once

#include "config/config.hpp"

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mtls::proxy {

// https://host[:port]/base/ split up.
struct UpstreamTarget {
    std::string host;  // DNS name or IP literal (no brackets); SNI + name check use it
    std::uint16_t port = 443;
    std::string base_path;  // always starts with '/', e.g. "/v2/"
    std::string authority;  // the Host header to send: host, [v6] and :port when not 443
    bool host_is_ip = false;
};
// nullopt and `error` set when the URL is not https://host[:port][/path] without query,
// fragment or userinfo.
std::optional<UpstreamTarget> parse_upstream_url(std::string_view url, std::string& error);

// A Host header's name: "[::1]:8480" -> "::1", "Example.org:80" -> "Example.org".
std::string_view host_without_port(std::string_view host);

// Who is calling.
struct Caller {
    bool via_unix_socket = false;
    uid_t uid = static_cast<uid_t>(-1);  // Unix-socket callers only
    std::vector<gid_t> gids;             // primary and supplementary groups (Unix socket)
    std::string address;                 // "127.0.0.1:51234" or "unix:uid=1000"
};

struct RouteMatch {
    std::size_t index = 0;        // into RouteTable::routes()
    std::string upstream_target;  // the request-target to send upstream (origin-form)
};

class RouteTable {
  public:
    struct Entry {
        config::Route route;
        UpstreamTarget target;
    };
    // Throws std::invalid_argument naming the route when an upstream URL is bad or a route
    // has neither path_prefix nor host.
    explicit RouteTable(const std::vector<config::Route>& routes);

    // target: the origin-form request-target ("/a/b?q"); host: the Host header value.
    std::optional<RouteMatch> match(std::string_view target, std::string_view host) const;

    // Whether `caller` may use route `index` (uid/gid restrictions).
    bool caller_allowed(std::size_t index, const Caller& caller) const;

    const std::vector<Entry>& routes() const { return entries_; }

  private:
    std::vector<Entry> entries_;
};

}  // namespace mtls::proxy
