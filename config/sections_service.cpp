// [agent], [listener], [admin], [metrics], [logging]: how the daemon runs and who may talk
// to it.
#include "common/text.hpp"
#include "config/checks.hpp"
#include "config/sections.hpp"

#include <map>

namespace mtls::config::detail {

using checks::quote;

void read_agent(Section& root, Config& c) {
    Section s = section(root, "agent", false);
    if (s.str("state_dir", c.state_dir)) s.check("state_dir", checks::absolute_path(c.state_dir));
    s.finish();
}

namespace {
// The socket an address names: "localhost:8480" is "127.0.0.1:8480" (what the proxy binds).
std::string same_socket(const std::string& text, const checks::ListenAddress& a) {
    return text::iequals(a.host, "localhost") ? "127.0.0.1:" + std::to_string(a.port) : text;
}
}  // namespace

void read_listener(Section& root, Config& c) {
    Section s = section(root, "listener", false);
    auto& l = c.listener;
    s.boolean("allow_non_loopback", l.allow_non_loopback);
    std::vector<int> lines;
    if (s.str_list("addresses", l.addresses, &lines)) {
        std::map<std::string, int> seen;
        for (std::size_t i = 0; i < l.addresses.size(); ++i) {
            std::string where = s.key_path("addresses") + "[" + std::to_string(i) + "]";
            checks::ListenAddress a;
            if (auto problem = checks::listen_address(l.addresses[i], a); !problem.empty()) {
                s.errors().add(lines[i], where, problem);
            } else if (!a.loopback && !l.allow_non_loopback) {
                s.errors().add(lines[i], where,
                               quote(l.addresses[i]) +
                                   " is not a loopback address; the proxy attaches this host's "
                                   "identity to every call, so set listener.allow_non_loopback = "
                                   "true only if other hosts may use it");
            } else if (auto [it, fresh] = seen.emplace(same_socket(l.addresses[i], a), lines[i]);
                       !fresh) {
                s.errors().add(lines[i], where,
                               "duplicate address " + quote(l.addresses[i]) + " (first at line " +
                                   std::to_string(it->second) + ")");
            }
        }
    }
    if (s.str("unix_socket", l.unix_socket) && !l.unix_socket.empty())
        s.check("unix_socket", checks::unix_socket_path(l.unix_socket));
    s.mode("unix_socket_mode", l.unix_socket_mode);
    if (s.present() && l.addresses.empty() && l.unix_socket.empty() && s.has("addresses"))
        s.error("addresses", "nothing to listen on: list at least one address or set unix_socket");
    s.unsigned_int("max_header_bytes", l.max_header_bytes, 1024, 1 << 20);
    s.unsigned_int("max_header_count", l.max_header_count, 1, 10000);
    s.duration("client_idle", l.client_idle, std::chrono::milliseconds(1));
    s.duration("request_head_timeout", l.request_head_timeout, std::chrono::milliseconds(1));
    s.duration("body_idle", l.body_idle, std::chrono::milliseconds(1));
    s.duration("drain_timeout", l.drain_timeout, std::chrono::milliseconds(0));
    checked_list(root, s, "allowed_hosts", l.allowed_hosts, checks::allowed_host);
    checked_list(root, s, "allowed_origins", l.allowed_origins, checks::allowed_origin);
    s.unsigned_int("max_connections", l.max_connections, 0, 1000000);
    if (s.unsigned_int("max_connections_per_caller", l.max_connections_per_caller, 0, 1000000) &&
        l.max_connections != 0 && l.max_connections_per_caller > l.max_connections)
        s.error("max_connections_per_caller", std::to_string(l.max_connections_per_caller) +
                                                  " is more than listener.max_connections (" +
                                                  std::to_string(l.max_connections) +
                                                  "); lower it, or set 0 to derive it");
    s.unsigned_int("workers", l.workers, 1, 64);
    s.finish();
}

void read_admin(Section& root, Config& c) {
    Section s = section(root, "admin", false);
    auto& a = c.admin;
    if (s.str("socket", a.socket)) s.check("socket", checks::unix_socket_path(a.socket));
    s.mode("mode", a.mode);
    if (s.str("group", a.group) && !a.group.empty()) s.check("group", checks::plain_name(a.group));
    std::vector<std::uint32_t> ids;
    if (s.id_list("allowed_uids", ids)) a.allowed_uids.assign(ids.begin(), ids.end());
    if (s.id_list("allowed_gids", ids)) a.allowed_gids.assign(ids.begin(), ids.end());
    s.unsigned_int("max_connections_per_uid", a.max_connections_per_uid, 1, 48);
    s.finish();
}

void read_metrics(Section& root, Config& c) {
    Section s = section(root, "metrics", false);
    if (s.str("listen", c.metrics.listen) && !c.metrics.listen.empty()) {
        checks::ListenAddress a;
        if (s.check("listen", checks::listen_address(c.metrics.listen, a)) && !a.loopback &&
            !c.listener.allow_non_loopback)
            s.error("listen", quote(c.metrics.listen) +
                                  " is not a loopback address; set listener.allow_non_loopback = "
                                  "true to serve metrics to other hosts");
    }
    checked_list(root, s, "allowed_hosts", c.metrics.allowed_hosts, checks::allowed_host);
    s.finish();
}

void read_logging(Section& root, Config& c) {
    Section s = section(root, "logging", false);
    s.enumeration("level", c.logging.level,
                  {{"debug", std::string("debug")},
                   {"info", std::string("info")},
                   {"warning", std::string("warning")},
                   {"error", std::string("error")}});
    s.enumeration("format", c.logging.format,
                  {{"text", std::string("text")}, {"json", std::string("json")}});
    s.boolean("access_log", c.logging.access_log);
    s.finish();
}

}  // namespace mtls::config::detail
