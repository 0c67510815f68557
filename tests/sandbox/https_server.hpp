// One TLS listener of the sandbox: accepts on loopback, runs one coroutine per connection
// (Boost.Beast over an ssl_stream), counts handshakes and resumptions, and hands every
// request to a handler as an Exchange. Paths under /sandbox/ go to the admin handler.
#pragma once

#include "common/ossl.hpp"
#include "tests/sandbox/stats.hpp"

#include <utility>  // Boost 1.74 awaitable.hpp uses std::exchange without it

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace mtls::sandbox {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Stream = beast::ssl_stream<beast::tcp_stream>;
using RequestParser = http::request_parser<http::buffer_body>;
using StringResponse = http::response<http::string_body>;
template <class T>
using Task = asio::awaitable<T>;

// What the TLS layer told us about the client.
struct PeerInfo {
    ossl::X509Ptr cert;     // null without a client certificate
    ossl::X509Stack chain;  // as sent (may be null, e.g. on resumption)
    std::string x5t;        // base64url SHA-256 of the leaf DER ("" without a cert)
    bool resumed = false;
    std::string version;       // "TLSv1.3"
    std::string tls_unique;    // TLS <= 1.2: first Finished message (RFC 5929)
    std::string tls_exporter;  // TLS 1.3: RFC 9266 exporter, 32 bytes
};

class Exchange {
  public:
    Exchange(Stream& stream, beast::flat_buffer& buffer, RequestParser& parser,
             const PeerInfo& peer, const std::string& service, std::chrono::milliseconds io);

    const http::request<http::buffer_body>& req() const { return parser_.get(); }
    std::string_view target() const;
    std::string_view path() const;   // target without the query
    std::string_view query() const;  // after '?', or ""
    std::string header(http::field f) const;
    std::string header(std::string_view name) const;

    // Reads the whole request body; nullopt when larger than `limit` (the connection will
    // close) or when the read fails.
    Task<std::optional<std::string>> read_body(std::size_t limit);

    StringResponse make(http::status status) const;  // version, keep-alive, Server set
    Task<void> send(StringResponse res);
    // Note (GCC 12): never write a braced JSON initializer inside a co_await expression
    // ("array used as initializer"); build the JSON in a variable first.
    Task<void> send_json(http::status status, nlohmann::json body);
    Task<void> send_error(http::status status, std::string message);  // {"error": message}
    Task<void> send_text(http::status status, std::string body,
                         std::string content_type = "text/plain");

    Stream& stream() { return stream_; }
    beast::flat_buffer& buffer() { return buffer_; }
    RequestParser& parser() { return parser_; }
    void refresh_timeout();
    // Answers "Expect: 100-continue" once, before the body is read.
    Task<void> continue_if_expected();

    const PeerInfo& peer;
    const std::string& service;
    bool close = false;  // close the connection after this exchange
    bool reset = false;  // the handler already tore the TCP connection down
    bool responded = false;
    int status = 0;
    // Filled in by handlers that looked at a bearer token (for GET /sandbox/requests).
    std::string token_cnf_x5t;
    std::optional<bool> bound;
    // Applied by send() to every response of this exchange (e.g. EST's CGI Status field).
    std::function<void(StringResponse&)> decorate;

  private:
    Stream& stream_;
    beast::flat_buffer& buffer_;
    RequestParser& parser_;
    std::chrono::milliseconds io_;
    bool continue_sent_ = false;
};

using Handler = std::function<Task<void>(Exchange&)>;

class HttpsServer {
  public:
    HttpsServer(asio::io_context& io, std::string name, ossl::SslCtx ctx, Handler handler,
                Handler admin, Stats& stats, std::chrono::milliseconds idle_timeout);
    HttpsServer(const HttpsServer&) = delete;
    HttpsServer& operator=(const HttpsServer&) = delete;

    // Binds (port 0: a free one) and starts accepting.
    void listen(const asio::ip::address& addr, std::uint16_t port);
    std::uint16_t port() const { return port_; }
    const std::string& name() const { return name_; }
    // Closes the listening socket (connections are refused) / reopens it on the same port.
    void pause();
    void resume();
    void stop();

  private:
    Task<void> accept_loop();
    Task<void> session(tcp::socket socket);

    asio::io_context& io_;
    std::string name_;
    asio::ssl::context ctx_;
    Handler handler_, admin_;
    Stats& stats_;
    std::chrono::milliseconds idle_;
    tcp::acceptor acceptor_;
    tcp::endpoint endpoint_;
    std::uint16_t port_ = 0;
    bool stopped_ = false;
};

// Reads what the handshake established: peer certificate, resumption, channel bindings.
PeerInfo peer_info(SSL* ssl);

}  // namespace mtls::sandbox
