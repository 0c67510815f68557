// The proxy's local listening sockets: TCP on listener.addresses (loopback only unless
// allow_non_loopback — refused here at bind time too), and optionally a Unix socket whose
// callers are identified by SO_PEERCRED (uid, gid, supplementary groups) for routes with
// allowed_uids / allowed_gids.
#pragma once

#include "agent/net/asio.hpp"
#include "agent/proxy/router.hpp"
#include "config/config.hpp"

#include <string>
#include <vector>

namespace mtls::proxy {

// "127.0.0.1:8480", "[::1]:8480" -> endpoint; throws std::invalid_argument with the reason.
net::tcp::endpoint parse_listen_address(const std::string& text);

// Binds every TCP address of `cfg`. Throws std::runtime_error ("cannot listen on …: …").
std::vector<net::tcp::acceptor> bind_tcp(net::asio::io_context& io, const config::Listener& cfg);

// Binds cfg.unix_socket (replacing a stale socket file, never another kind of file) and
// applies cfg.unix_socket_mode. Throws std::runtime_error.
net::unix_socket::acceptor bind_unix(net::asio::io_context& io, const config::Listener& cfg);

Caller tcp_caller(const net::tcp::socket& s);
Caller unix_caller(const net::unix_socket::socket& s);

}  // namespace mtls::proxy
