#include "agent/proxy/router.hpp"

#include <boost/asio/ip/address.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <stdexcept>
#include "common/text.hpp"

namespace mtls::proxy {
namespace {

using text::iequals;

// Joins the upstream base path ("/v2/") and the rest of the request's path ("v1/x?q=1").
std::string join_path(const std::string& base, std::string_view rest) {
    if (rest.empty()) return base;
    std::string out;
    out.reserve(base.size() + rest.size() + 1);  // one allocation
    out = base;
    if (rest.front() == '?') {  // "/partner-a?x" -> "/v2/?x"
        out += rest;
        return out;
    }
    if (out.back() == '/' && rest.front() == '/') rest.remove_prefix(1);
    if (out.back() != '/' && rest.front() != '/') out += '/';
    out += rest;
    return out;
}

}  // namespace

std::string_view host_without_port(std::string_view host) {
    if (!host.empty() && host.front() == '[') {
        auto close = host.find(']');
        return close == std::string_view::npos ? host : host.substr(1, close - 1);
    }
    auto colon = host.rfind(':');
    return colon == std::string_view::npos ? host : host.substr(0, colon);
}

std::optional<UpstreamTarget> parse_upstream_url(std::string_view url, std::string& error) {
    constexpr std::string_view scheme = "https://";
    if (url.size() < scheme.size() || !iequals(url.substr(0, scheme.size()), scheme)) {
        error = "\"" + std::string(url) + "\" is not an https:// URL";
        return std::nullopt;
    }
    std::string_view rest = url.substr(scheme.size());
    if (rest.find_first_of("?#") != std::string_view::npos) {
        error = "\"" + std::string(url) + "\": the upstream URL may not have a query or fragment";
        return std::nullopt;
    }
    auto slash = rest.find('/');
    std::string_view authority = rest.substr(0, slash);
    UpstreamTarget t;
    t.base_path = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
    if (authority.empty() || authority.find('@') != std::string_view::npos) {
        error = "\"" + std::string(url) + "\": needs a host (and no user info)";
        return std::nullopt;
    }
    std::string_view host = authority, port;
    if (authority.front() == '[') {
        auto close = authority.find(']');
        if (close == std::string_view::npos) {
            error = "\"" + std::string(url) + "\": unterminated [IPv6] host";
            return std::nullopt;
        }
        host = authority.substr(1, close - 1);
        std::string_view after = authority.substr(close + 1);
        if (!after.empty()) {
            if (after.front() != ':') {
                error = "\"" + std::string(url) + "\": junk after the [IPv6] host";
                return std::nullopt;
            }
            port = after.substr(1);
        }
    } else if (auto colon = authority.rfind(':'); colon != std::string_view::npos) {
        host = authority.substr(0, colon);
        port = authority.substr(colon + 1);
    }
    if (host.empty()) {
        error = "\"" + std::string(url) + "\": empty host";
        return std::nullopt;
    }
    if (!port.empty()) {
        unsigned v = 0;
        auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), v);
        if (ec != std::errc() || p != port.data() + port.size() || v == 0 || v > 65535) {
            error = "\"" + std::string(url) + "\": bad port";
            return std::nullopt;
        }
        t.port = static_cast<std::uint16_t>(v);
    }
    t.host = std::string(host);
    boost::system::error_code ec;
    boost::asio::ip::make_address(t.host, ec);
    t.host_is_ip = !ec;
    bool v6 = t.host.find(':') != std::string::npos;
    t.authority = v6 ? "[" + t.host + "]" : t.host;
    if (t.port != 443) t.authority += ":" + std::to_string(t.port);
    return t;
}

RouteTable::RouteTable(const std::vector<config::Route>& routes) {
    for (std::size_t i = 0; i < routes.size(); ++i) {
        const auto& r = routes[i];
        std::string name = r.name.empty() ? "routes[" + std::to_string(i) + "]" : r.name;
        if (r.path_prefix.empty() && r.host.empty())
            throw std::invalid_argument("route " + name + ": needs path_prefix or host");
        if (!r.path_prefix.empty() && r.path_prefix.front() != '/')
            throw std::invalid_argument("route " + name + ": path_prefix must start with '/'");
        std::string err;
        auto t = parse_upstream_url(r.upstream, err);
        if (!t) throw std::invalid_argument("route " + name + ": upstream " + err);
        entries_.push_back(Entry{r, std::move(*t)});
    }
}

std::optional<RouteMatch> RouteTable::match(std::string_view target, std::string_view host) const {
    // 1. Host routes.
    std::string_view bare_host = host_without_port(host);
    for (std::size_t i = 0; i < entries_.size(); ++i) {
        const auto& r = entries_[i].route;
        if (!r.host.empty() && iequals(r.host, bare_host))
            return RouteMatch{i, join_path(entries_[i].target.base_path, target)};
    }
    // 2. Longest path prefix.
    std::string_view path = target.substr(0, target.find('?'));
    std::optional<std::size_t> best;
    std::size_t best_len = 0;
    std::size_t best_consumed = 0;
    for (std::size_t i = 0; i < entries_.size(); ++i) {
        std::string_view prefix = entries_[i].route.path_prefix;
        if (prefix.empty() || !entries_[i].route.host.empty()) continue;
        std::size_t consumed = 0;
        if (path.substr(0, prefix.size()) == prefix) {
            consumed = prefix.size();
        } else if (prefix.size() > 1 && prefix.back() == '/' &&
                   path == prefix.substr(0, prefix.size() - 1)) {
            consumed = prefix.size() - 1;  // "/partner-a" for "/partner-a/"
        } else {
            continue;
        }
        if (!best || prefix.size() > best_len) {
            best = i;
            best_len = prefix.size();
            best_consumed = consumed;
        }
    }
    if (!best) return std::nullopt;
    return RouteMatch{*best,
                      join_path(entries_[*best].target.base_path, target.substr(best_consumed))};
}

bool RouteTable::caller_allowed(std::size_t index, const Caller& caller) const {
    const auto& r = entries_.at(index).route;
    if (r.allowed_uids.empty() && r.allowed_gids.empty()) return true;
    if (!caller.via_unix_socket) return false;
    if (std::find(r.allowed_uids.begin(), r.allowed_uids.end(), caller.uid) != r.allowed_uids.end())
        return true;
    for (gid_t g : caller.gids)
        if (std::find(r.allowed_gids.begin(), r.allowed_gids.end(), g) != r.allowed_gids.end())
            return true;
    return false;
}

}  // namespace mtls::proxy
