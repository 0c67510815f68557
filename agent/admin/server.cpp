#include "agent/admin/server.hpp"

#include "agent/net/accept_guard.hpp"
#include "common/log.hpp"
#include "common/rate_limited_log.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace asio = boost::asio;
using asio::local::stream_protocol;

namespace mtls::admin {

Server::Server(asio::io_context& io, ServerOptions opt) : io_(io), opt_(std::move(opt)) {}

Server::~Server() {
    stop();
}

void Server::add_command(std::string name, Handler h,
                         std::map<std::string, nlohmann::json::value_t> args) {
    arg_types_[name] = std::move(args);
    handlers_[std::move(name)] = std::move(h);
}

namespace {
const char* json_type_name(nlohmann::json::value_t t) {
    using V = nlohmann::json::value_t;
    switch (t) {
        case V::boolean:
            return "a boolean";
        case V::string:
            return "a string";
        case V::number_integer:
        case V::number_unsigned:
            return "an integer";
        case V::object:
            return "an object";
        case V::array:
            return "an array";
        default:
            return "a value";
    }
}

// The arguments of a request against what the command takes (docs/admin-protocol.md).
void check_args(const std::string& cmd, const nlohmann::json& args,
                const std::map<std::string, nlohmann::json::value_t>& types) {
    for (auto it = args.begin(); it != args.end(); ++it) {
        auto t = types.find(it.key());
        if (t == types.end()) {
            std::string known;
            for (const auto& [name, type] : types) known += (known.empty() ? "" : ", ") + name;
            throw CommandError("bad_request", "unknown argument \"" + it.key() + "\" for " + cmd +
                                                  (known.empty() ? " (it takes none)"
                                                                 : " (it takes: " + known + ")"));
        }
        const bool integer_ok =
            t->second == nlohmann::json::value_t::number_integer && it.value().is_number_integer();
        if (it.value().type() != t->second && !integer_ok)
            throw CommandError("bad_request", "argument \"" + it.key() + "\" of " + cmd +
                                                  " must be " + json_type_name(t->second));
    }
}
}  // namespace

ServerOptions Server::resolve(ServerOptions opt) {
    // The admin group: [admin] group, or the agent's own group. Its members may connect
    // (mode 0660) and are let in by the peer check.
    if (!opt.policy.admin_gid) {
        if (opt.listener.group.empty()) {
            opt.policy.admin_gid = ::getegid();
        } else if (auto gid = group_id(opt.listener.group)) {
            opt.policy.admin_gid = *gid;
        } else {
            throw std::runtime_error("admin.group: group \"" + opt.listener.group +
                                     "\" does not exist (create it, e.g. groupadd --system " +
                                     opt.listener.group + ", or leave admin.group empty)");
        }
    }
    if (opt.policy.admin_group_name.empty())
        opt.policy.admin_group_name =
            opt.listener.group.empty()
                ? group_name(*opt.policy.admin_gid)
                      .value_or("gid " + std::to_string(*opt.policy.admin_gid))
                : opt.listener.group;
    return opt;
}

static net::ConnectionCaps::Limits admin_caps(const ServerOptions& opt) {
    net::ConnectionCaps::Limits limits;
    limits.total = opt.max_connections;
    limits.per_caller = opt.max_connections_per_uid;
    limits.reserved = std::min(opt.reserved, opt.max_connections / 2);
    return limits;
}

void Server::bind() {
    if (started_) return;
    opt_ = resolve(std::move(opt_));
    caps_ = std::make_unique<net::ConnectionCaps>(admin_caps(opt_));
    net::reserve_spare_fd();
    int fd = net::make_unix_listener(opt_.listener);
    acceptor_ = std::make_unique<stream_protocol::acceptor>(io_);
    acceptor_->assign(stream_protocol(), fd);
    started_ = true;
}

void Server::start() {
    bind();
    if (accepting_) return;
    accepting_ = true;
    asio::co_spawn(io_, accept_loop(), asio::detached);
    log::info("admin.listening",
              {{"socket", opt_.listener.path}, {"group", opt_.policy.admin_group_name}});
}

void Server::apply(ServerOptions next) {
    const bool mode_changed = next.listener.mode != opt_.listener.mode;
    const bool group_changed = next.policy.admin_gid != opt_.policy.admin_gid;
    next.listener.path = opt_.listener.path;
    opt_ = std::move(next);
    if (caps_) caps_->set_limits(admin_caps(opt_));
    if (!started_) return;
    const char* path = opt_.listener.path.c_str();
    if (group_changed && ::chown(path, static_cast<uid_t>(-1), *opt_.policy.admin_gid) != 0)
        log::warn("admin.socket_group_failed",
                  {{"socket", opt_.listener.path}, {"error", std::strerror(errno)}});
    if ((mode_changed || group_changed) && ::chmod(path, opt_.listener.mode) != 0)
        log::warn("admin.socket_mode_failed",
                  {{"socket", opt_.listener.path}, {"error", std::strerror(errno)}});
}

void Server::stop() {
    if (!started_) return;
    started_ = false;
    boost::system::error_code ec;
    acceptor_->close(ec);
    ::unlink(opt_.listener.path.c_str());
}

asio::awaitable<void> Server::accept_loop() {
    // A flood of refused connections or failing accepts writes one line per interval.
    log::RateLimited accept_failed(log::Level::warning, "admin.accept_failed",
                                   std::chrono::seconds(5));
    log::RateLimited too_many(log::Level::warning, "admin.too_many_connections",
                              std::chrono::seconds(5));
    const std::string fd_reply = error_line(
        "too_many_connections", "the agent has run out of file descriptors; try again later");
    net::AcceptBackoff backoff;
    asio::steady_timer pause(io_);
    bool failing = false;
    for (;;) {
        boost::system::error_code ec;
        auto sock = co_await acceptor_->async_accept(asio::make_strand(io_),
                                                     asio::redirect_error(asio::use_awaitable, ec));
        if (ec == asio::error::operation_aborted || !acceptor_ || !acceptor_->is_open()) co_return;
        if (ec) {
            if (!net::out_of_descriptors(ec)) {
                accept_failed.write({{"error", ec.message()}});
                continue;
            }
            // Out of descriptors: refuse the waiting callers with the spare descriptor, then
            // pause instead of retrying at once.
            failing = true;
            net::shed_pending(acceptor_->native_handle(), fd_reply);
            const auto wait = backoff.next();
            accept_failed.write({{"error", ec.message()},
                                 {"action", "refusing connections, pausing accepts"},
                                 {"pause_ms", wait.count()}});
            pause.expires_after(wait);
            co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
            if (!acceptor_ || !acceptor_->is_open()) co_return;
            continue;
        }
        if (failing) {
            failing = false;
            backoff.reset();
            accept_failed.flush({{"error", "out of file descriptors"}});
        }
        PeerCred peer;
        try {
            peer = peer_cred(sock.native_handle());
        } catch (const std::exception& e) {
            log::warn("admin.peer_unknown", {{"error", e.what()}});
            continue;  // sock closes
        }
        const bool privileged = peer.uid == 0 || peer.uid == ::getuid();
        auto admission = caps_->admit("uid:" + std::to_string(peer.uid), privileged);
        if (!admission.slot) {
            const bool per_uid = admission.refusal == net::ConnectionCaps::Refusal::per_caller;
            too_many.write({{"uid", peer.uid},
                            {"pid", peer.pid},
                            {"reason", per_uid ? "max_connections_per_uid" : "max_connections"},
                            {"open", admission.open}});
            net::refuse(
                sock.native_handle(),
                error_line("too_many_connections",
                           per_uid ? "uid " + std::to_string(peer.uid) + " has " +
                                         std::to_string(admission.open) +
                                         " admin connections open, the most allowed "
                                         "(admin.max_connections_per_uid = " +
                                         std::to_string(opt_.max_connections_per_uid) +
                                         "); close some, or raise it"
                                   : "the admin socket has " + std::to_string(admission.open) +
                                         " connections open, the most other users may "
                                         "hold; try again later"));
            continue;  // sock closes
        }
        auto ex = sock.get_executor();
        asio::co_spawn(ex, serve(std::move(sock), peer, std::move(admission.slot)), asio::detached);
    }
}

asio::awaitable<void> Server::serve(stream_protocol::socket sock, PeerCred peer,
                                    net::ConnectionCaps::Slot slot) {
    (void)slot;  // held until the connection ends
    if (!allowed(peer, opt_.policy)) {
        refused_log_.write({{"uid", peer.uid}, {"gid", peer.gid}, {"pid", peer.pid}});
        auto line = error_line("refused",
                               "uid " + std::to_string(peer.uid) +
                                   " may not use the admin socket: only root, the agent's user and "
                                   "members of group " +
                                   opt_.policy.admin_group_name +
                                   " may (admin.group; or list the caller in admin.allowed_uids / "
                                   "admin.allowed_gids)");
        boost::system::error_code ec;
        co_await asio::async_write(sock, asio::buffer(line),
                                   asio::redirect_error(asio::use_awaitable, ec));
        co_return;
    }

    asio::streambuf buf(kMaxRequestBytes + 1);
    asio::steady_timer deadline(sock.get_executor());
    bool timed_out = false;
    for (;;) {
        deadline.expires_after(opt_.read_timeout);
        deadline.async_wait([&](boost::system::error_code ec) {
            if (!ec) {
                timed_out = true;
                boost::system::error_code ignored;
                sock.cancel(ignored);
            }
        });
        boost::system::error_code ec;
        std::size_t n = co_await asio::async_read_until(
            sock, buf, '\n', asio::redirect_error(asio::use_awaitable, ec));
        deadline.cancel();
        std::string reply;
        bool close_after = false;
        if (timed_out) {
            reply = error_line("timeout", "no complete request line within " +
                                              std::to_string(opt_.read_timeout.count()) + " ms");
            close_after = true;
        } else if (ec == asio::error::not_found) {
            reply = error_line("bad_request", "request line longer than " +
                                                  std::to_string(kMaxRequestBytes) + " bytes");
            close_after = true;
        } else if (ec) {
            co_return;  // peer went away
        } else {
            std::string line(asio::buffers_begin(buf.data()),
                             asio::buffers_begin(buf.data()) + static_cast<std::ptrdiff_t>(n));
            buf.consume(n);
            if (!line.empty() && line.back() == '\n') line.pop_back();
            if (!line.empty() && line.back() == '\r') line.pop_back();
            if (line.empty()) continue;
            reply = co_await dispatch(line, peer);
        }
        boost::system::error_code wec;
        co_await asio::async_write(sock, asio::buffer(reply),
                                   asio::redirect_error(asio::use_awaitable, wec));
        if (wec || close_after) co_return;
    }
}

asio::awaitable<std::string> Server::dispatch(const std::string& line, const PeerCred& peer) {
    Request req;
    try {
        req = parse_request(line);
    } catch (const CommandError& e) {
        co_return error_line(e.code(), e.what());
    }
    auto it = handlers_.find(req.cmd);
    if (it == handlers_.end()) {
        std::string known;
        for (const auto& [name, h] : handlers_) known += (known.empty() ? "" : ", ") + name;
        co_return error_line("unknown_command",
                             "unknown command \"" + req.cmd + "\" (known: " + known + ")");
    }
    log::info("admin.command", {{"cmd", req.cmd}, {"uid", peer.uid}, {"pid", peer.pid}});
    try {
        check_args(req.cmd, req.args, arg_types_[req.cmd]);
    } catch (const CommandError& e) {
        co_return error_line(e.code(), e.what());
    }
    try {
        auto result = co_await it->second(req.args, peer);
        co_return ok_line(result);
    } catch (const CommandError& e) {
        co_return error_line(e.code(), e.what());
    } catch (const std::exception& e) {
        log::error("admin.command_failed", {{"cmd", req.cmd}, {"error", e.what()}});
        co_return error_line("internal", e.what());
    }
}

}  // namespace mtls::admin
