#include "agent/proxy/listener.hpp"

#include "agent/net/unix_listener.hpp"

#include <grp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <stdexcept>

#include "common/text.hpp"

namespace mtls::proxy {

net::tcp::endpoint parse_listen_address(const std::string& text) {
    std::string host, port;
    if (!text.empty() && text.front() == '[') {
        auto close = text.find(']');
        if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':')
            throw std::invalid_argument("\"" + text + "\" is not [v6-address]:port");
        host = text.substr(1, close - 1);
        port = text.substr(close + 2);
    } else {
        auto colon = text.rfind(':');
        if (colon == std::string::npos)
            throw std::invalid_argument("\"" + text + "\" is not address:port");
        host = text.substr(0, colon);
        port = text.substr(colon + 1);
    }
    // "localhost" is 127.0.0.1, as --check-config documents (names are not resolved here).
    if (text::iequals(host, "localhost")) host = "127.0.0.1";
    net::error_code ec;
    auto addr = net::asio::ip::make_address(host, ec);
    if (ec)
        throw std::invalid_argument("\"" + text + "\": \"" + host +
                                    "\" is not an IP address (names are not resolved here)");
    unsigned p = 0;
    auto [end, perr] = std::from_chars(port.data(), port.data() + port.size(), p);
    if (port.empty() || perr != std::errc() || end != port.data() + port.size() || p > 65535)
        throw std::invalid_argument("\"" + text + "\": bad port");
    return {addr, static_cast<unsigned short>(p)};
}

std::vector<net::tcp::acceptor> bind_tcp(net::asio::io_context& io, const config::Listener& cfg) {
    std::vector<net::tcp::acceptor> out;
    for (const auto& a : cfg.addresses) {
        net::tcp::endpoint ep;
        try {
            ep = parse_listen_address(a);
        } catch (const std::invalid_argument& e) {
            throw std::runtime_error(std::string("listener.addresses: ") + e.what());
        }
        if (!ep.address().is_loopback() && !cfg.allow_non_loopback)
            throw std::runtime_error("cannot listen on " + a +
                                     ": not a loopback address (set listener.allow_non_loopback "
                                     "= true to expose the proxy beyond this host)");
        net::tcp::acceptor acc(io);
        net::error_code ec;
        acc.open(ep.protocol(), ec);
        if (!ec) acc.set_option(net::asio::socket_base::reuse_address(true), ec);
        if (!ec && ep.address().is_v6()) acc.set_option(net::asio::ip::v6_only(true), ec);
        if (!ec) acc.bind(ep, ec);
        if (!ec) acc.listen(net::asio::socket_base::max_listen_connections, ec);
        if (ec) throw std::runtime_error("cannot listen on " + a + ": " + ec.message());
        out.push_back(std::move(acc));
    }
    return out;
}

net::unix_socket::acceptor bind_unix(net::asio::io_context& io, const config::Listener& cfg) {
    // As the admin socket: a stale socket is replaced, a live one (another agent serving
    // it) is an error, and the path never exists with a wider mode than configured.
    net::UnixListenerOptions opt;
    opt.path = cfg.unix_socket;
    opt.mode = cfg.unix_socket_mode;
    opt.backlog = net::asio::socket_base::max_listen_connections;
    int fd = -1;
    try {
        fd = net::make_unix_listener(opt);
    } catch (const std::runtime_error& e) {
        throw std::runtime_error("listener.unix_socket: " + std::string(e.what()));
    }
    net::unix_socket::acceptor acc(io);
    net::error_code ec;
    acc.assign(net::unix_socket(), fd, ec);
    if (ec) {
        ::close(fd);
        throw std::runtime_error("cannot listen on " + cfg.unix_socket + ": " + ec.message());
    }
    return acc;
}

Caller tcp_caller(const net::tcp::socket& s) {
    Caller c;
    net::error_code ec;
    auto ep = s.remote_endpoint(ec);
    if (!ec) {
        auto addr = ep.address().to_string();
        c.address =
            (ep.address().is_v6() ? "[" + addr + "]" : addr) + ":" + std::to_string(ep.port());
    } else {
        c.address = "tcp:unknown";
    }
    return c;
}

Caller unix_caller(const net::unix_socket::socket& s) {
    Caller c;
    c.via_unix_socket = true;
    int fd = const_cast<net::unix_socket::socket&>(s).native_handle();
    struct ucred cred {};
    socklen_t len = sizeof cred;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
        c.uid = cred.uid;
        c.gids.push_back(cred.gid);
        c.address = "unix:uid=" + std::to_string(cred.uid) + ",pid=" + std::to_string(cred.pid);
    } else {
        c.address = "unix:unknown";
    }
#ifdef SO_PEERGROUPS
    gid_t groups[256];
    socklen_t glen = sizeof groups;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &glen) == 0)
        for (socklen_t i = 0; i < glen / sizeof(gid_t); ++i) c.gids.push_back(groups[i]);
#endif
    return c;
}

}  // namespace mtls::proxy
