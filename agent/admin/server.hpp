// The admin socket server: accepts on a Unix socket, checks every caller (SO_PEERCRED)
// against the policy, reads one JSON request per line and dispatches it to a registered
// command handler. Slow, oversized or malformed requests get an error line or are timed out;
// they never block other clients (one coroutine per connection, each on its own strand).
//
// Handlers run on the io_context: anything slow (EST, token requests, Cryptoki) must be
// awaited asynchronously, not done inline.
#pragma once

#include "agent/admin/peer.hpp"
#include "agent/admin/protocol.hpp"
#include "agent/net/conn_caps.hpp"
#include "agent/net/unix_listener.hpp"
#include "common/rate_limited_log.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>

namespace mtls::admin {

using Handler = std::function<boost::asio::awaitable<nlohmann::json>(const nlohmann::json& args,
                                                                     const PeerCred& caller)>;

struct ServerOptions {
    net::UnixListenerOptions listener;
    AccessPolicy policy;
    std::chrono::milliseconds read_timeout{10000};  // to receive one whole request line
    std::size_t max_connections = 64;
    // One uid's connections at most; root and the agent's own uid are not held to it, and the
    // last `reserved` of max_connections are theirs alone: no other uid can lock them out.
    std::size_t max_connections_per_uid = 8;
    std::size_t reserved = 16;
};

class Server {
  public:
    Server(boost::asio::io_context& io, ServerOptions opt);
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    // Register before start(). Throwing CommandError gives the caller {code, message};
    // any other exception becomes "internal" with its what().
    // `args`: the arguments the command takes and their JSON types; any other argument, or
    // one of another type, is answered bad_request before the handler runs.
    void add_command(std::string name, Handler h,
                     std::map<std::string, nlohmann::json::value_t> args = {});

    // Creates the socket file (not accepting yet). Throws std::runtime_error.
    void bind();
    // Binds if not bound yet and starts accepting. Throws std::runtime_error.
    void start();
    // Reload with the same socket path: `next` with its admin group resolved (throws
    // std::runtime_error when the group does not exist). Changes nothing.
    static ServerOptions resolve(ServerOptions next);
    // Applies resolved options to the running server: the access policy and per-uid cap for
    // the next connections, the socket file's mode and group.
    void apply(ServerOptions resolved);
    // Stops accepting and removes the socket file; connections finish on their own.
    void stop();

    const std::string& path() const { return opt_.listener.path; }

  private:
    boost::asio::awaitable<void> accept_loop();
    boost::asio::awaitable<void> serve(boost::asio::local::stream_protocol::socket sock,
                                       PeerCred peer, net::ConnectionCaps::Slot slot);
    boost::asio::awaitable<std::string> dispatch(const std::string& line, const PeerCred& peer);

    boost::asio::io_context& io_;
    ServerOptions opt_;
    std::map<std::string, Handler> handlers_;
    std::map<std::string, std::map<std::string, nlohmann::json::value_t>> arg_types_;
    std::unique_ptr<boost::asio::local::stream_protocol::acceptor> acceptor_;
    std::unique_ptr<net::ConnectionCaps> caps_;
    log::RateLimited refused_log_{log::Level::warning, "admin.refused", std::chrono::seconds(5)};
    bool started_ = false;  // bound
    bool accepting_ = false;
};

}  // namespace mtls::admin
