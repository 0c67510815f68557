#include "tests/sandbox/https_server.hpp"

#include "common/log.hpp"
#include "tests/sandbox/form.hpp"
#include "tests/sandbox/pem.hpp"

#include <boost/asio/redirect_error.hpp>

#include <algorithm>
#include <limits>

namespace mtls::sandbox {

using namespace std::chrono_literals;
using asio::redirect_error;
using asio::use_awaitable;

PeerInfo peer_info(SSL* ssl) {
    PeerInfo p;
    p.cert.reset(SSL_get1_peer_certificate(ssl));
    if (STACK_OF(X509)* chain = SSL_get_peer_cert_chain(ssl))
        p.chain.reset(X509_chain_up_ref(chain));
    if (p.cert) p.x5t = x5t_s256(p.cert.get());
    p.resumed = SSL_session_reused(ssl) == 1;
    p.version = SSL_get_version(ssl);
    if (SSL_version(ssl) >= TLS1_3_VERSION) {
        static const char kLabel[] = "EXPORTER-Channel-Binding";
        unsigned char out[32];
        if (SSL_export_keying_material(ssl, out, sizeof out, kLabel, sizeof kLabel - 1, nullptr, 0,
                                       1) == 1)
            p.tls_exporter.assign(reinterpret_cast<char*>(out), sizeof out);
    } else {
        // RFC 5929: the first Finished of the latest handshake: the client's in a full
        // handshake, the server's in an abbreviated (resumed) one.
        unsigned char fin[EVP_MAX_MD_SIZE];
        size_t n = p.resumed ? SSL_get_finished(ssl, fin, sizeof fin)
                             : SSL_get_peer_finished(ssl, fin, sizeof fin);
        p.tls_unique.assign(reinterpret_cast<char*>(fin), std::min(n, sizeof fin));
    }
    return p;
}

Exchange::Exchange(Stream& stream, beast::flat_buffer& buffer, RequestParser& parser,
                   const PeerInfo& p, const std::string& svc, std::chrono::milliseconds io)
    : peer(p), service(svc), stream_(stream), buffer_(buffer), parser_(parser), io_(io) {}

std::string_view Exchange::target() const {
    auto t = req().target();
    return {t.data(), t.size()};
}
std::string_view Exchange::path() const {
    return split_target(target()).first;
}
std::string_view Exchange::query() const {
    return split_target(target()).second;
}

std::string Exchange::header(http::field f) const {
    auto it = req().find(f);
    return it == req().end() ? std::string{} : std::string(it->value());
}

std::string Exchange::header(std::string_view name) const {
    auto it = req().find(name);
    return it == req().end() ? std::string{} : std::string(it->value());
}

void Exchange::refresh_timeout() {
    beast::get_lowest_layer(stream_).expires_after(io_);
}

Task<void> Exchange::continue_if_expected() {
    if (continue_sent_ || parser_.is_done()) co_return;
    continue_sent_ = true;
    auto expect = header(http::field::expect);
    std::transform(expect.begin(), expect.end(), expect.begin(), ::tolower);
    if (expect != "100-continue") co_return;
    http::response<http::empty_body> res{http::status::continue_, req().version()};
    refresh_timeout();
    beast::error_code ec;
    co_await http::async_write(stream_, res, redirect_error(use_awaitable, ec));
    if (ec) close = true;
}

Task<std::optional<std::string>> Exchange::read_body(std::size_t limit) {
    co_await continue_if_expected();
    std::string out;
    char chunk[16384];
    while (!parser_.is_done()) {
        parser_.get().body().data = chunk;
        parser_.get().body().size = sizeof chunk;
        refresh_timeout();
        beast::error_code ec;
        co_await http::async_read(stream_, buffer_, parser_, redirect_error(use_awaitable, ec));
        if (ec == http::error::need_buffer) ec = {};
        if (ec) {
            close = true;
            co_return std::nullopt;
        }
        out.append(chunk, sizeof chunk - parser_.get().body().size);
        if (out.size() > limit) {
            close = true;
            co_return std::nullopt;
        }
    }
    co_return out;
}

StringResponse Exchange::make(http::status code) const {
    StringResponse res{code, req().version()};
    res.set(http::field::server, "partner-sandbox");
    res.keep_alive(req().keep_alive() && !close);
    return res;
}

Task<void> Exchange::send(StringResponse res) {
    // A request whose body was not read leaves the connection unusable: close it.
    if (!parser_.is_done()) close = true;
    if (close) res.keep_alive(false);
    if (decorate) decorate(res);
    res.prepare_payload();
    status = res.result_int();
    responded = true;
    refresh_timeout();
    beast::error_code ec;
    if (req().method() == http::verb::head) {
        // The head a GET would get, Content-Length included, and no content (RFC 9110
        // §9.3.2).
        http::response_serializer<http::string_body> sr{res};
        co_await http::async_write_header(stream_, sr, redirect_error(use_awaitable, ec));
    } else {
        co_await http::async_write(stream_, res, redirect_error(use_awaitable, ec));
    }
    if (ec) close = true;
}

Task<void> Exchange::send_error(http::status status_code, std::string message) {
    nlohmann::json body = nlohmann::json::object();
    body["error"] = std::move(message);
    co_await send_json(status_code, std::move(body));
}

Task<void> Exchange::send_json(http::status status_code, nlohmann::json body) {
    auto res = make(status_code);
    res.set(http::field::content_type, "application/json");
    res.set(http::field::cache_control, "no-store");
    res.body() = body.dump();
    co_await send(std::move(res));
}

Task<void> Exchange::send_text(http::status status_code, std::string body,
                               std::string content_type) {
    auto res = make(status_code);
    res.set(http::field::content_type, content_type);
    res.body() = std::move(body);
    co_await send(std::move(res));
}

HttpsServer::HttpsServer(asio::io_context& io, std::string name, ossl::SslCtx ctx, Handler handler,
                         Handler admin, Stats& stats, std::chrono::milliseconds idle_timeout)
    : io_(io),
      name_(std::move(name)),
      ctx_(ctx.release()),
      handler_(std::move(handler)),
      admin_(std::move(admin)),
      stats_(stats),
      idle_(idle_timeout),
      acceptor_(io) {}

void HttpsServer::listen(const asio::ip::address& addr, std::uint16_t port) {
    endpoint_ = tcp::endpoint(addr, port);
    acceptor_.open(endpoint_.protocol());
    acceptor_.set_option(asio::socket_base::reuse_address(true));
    acceptor_.bind(endpoint_);
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
    endpoint_.port(port_);
    asio::co_spawn(io_, accept_loop(), asio::detached);
}

void HttpsServer::pause() {
    asio::post(io_, [this] {
        beast::error_code ec;
        acceptor_.close(ec);
        log::info("sandbox_listener_paused", {{"service", name_}, {"port", port_}});
    });
}

void HttpsServer::resume() {
    asio::post(io_, [this] {
        if (acceptor_.is_open() || stopped_) return;
        try {
            acceptor_.open(endpoint_.protocol());
            acceptor_.set_option(asio::socket_base::reuse_address(true));
            acceptor_.bind(endpoint_);
            acceptor_.listen();
            asio::co_spawn(io_, accept_loop(), asio::detached);
            log::info("sandbox_listener_resumed", {{"service", name_}, {"port", port_}});
        } catch (const std::exception& e) {
            log::error("sandbox_listener_resume_failed", {{"service", name_}, {"error", e.what()}});
        }
    });
}

void HttpsServer::stop() {
    stopped_ = true;
    beast::error_code ec;
    acceptor_.close(ec);
}

Task<void> HttpsServer::accept_loop() {
    for (;;) {
        beast::error_code ec;
        tcp::socket socket = co_await acceptor_.async_accept(redirect_error(use_awaitable, ec));
        if (ec) {
            if (!acceptor_.is_open()) co_return;
            continue;  // e.g. EMFILE: keep serving
        }
        // As nginx (tcp_nodelay on), Go's net/http and most HTTP servers: small writes go out
        // at once instead of waiting for the peer's delayed ACK (Nagle). A partner's write is
        // then on the wire when it returns — what the tests that poll the sandbox's counters
        // before acting rely on.
        socket.set_option(tcp::no_delay(true), ec);
        asio::co_spawn(io_, session(std::move(socket)), asio::detached);
    }
}

Task<void> HttpsServer::session(tcp::socket socket) {
    auto& counters = stats_.service(name_);
    ++counters.connections;
    Stream stream(std::move(socket), ctx_);
    beast::get_lowest_layer(stream).expires_after(10s);
    beast::error_code ec;
    co_await stream.async_handshake(asio::ssl::stream_base::server,
                                    redirect_error(use_awaitable, ec));
    if (ec) {
        ++counters.handshake_failures;
        log::debug("sandbox_handshake_failed", {{"service", name_}, {"error", ec.message()}});
        co_return;
    }
    PeerInfo peer = peer_info(stream.native_handle());
    ++(peer.resumed ? counters.resumed_handshakes : counters.full_handshakes);

    beast::flat_buffer buffer;
    bool reset = false;
    for (;;) {
        RequestParser parser;
        parser.header_limit(16384);
        // Handlers stream or cap bodies themselves. (Not boost::none: Beast 1.74 compares
        // the content length against the optional and rejects every body then.)
        parser.body_limit(std::numeric_limits<std::uint64_t>::max());
        beast::get_lowest_layer(stream).expires_after(idle_);
        co_await http::async_read_header(stream, buffer, parser, redirect_error(use_awaitable, ec));
        if (ec) {
            if (ec != http::error::end_of_stream && ec != asio::ssl::error::stream_truncated &&
                ec != beast::error::timeout && ec != asio::error::eof) {
                // Malformed request: answer 400 once, then close.
                StringResponse res{http::status::bad_request, 11};
                res.set(http::field::content_type, "application/json");
                res.keep_alive(false);
                res.body() = nlohmann::json{{"error", "bad request: " + ec.message()}}.dump();
                res.prepare_payload();
                beast::get_lowest_layer(stream).expires_after(5s);
                co_await http::async_write(stream, res, redirect_error(use_awaitable, ec));
            }
            break;
        }
        ++counters.requests;
        Exchange ex(stream, buffer, parser, peer, name_, idle_);
        bool failed = false;
        std::string what;
        if (name_ == "api" && !ex.path().starts_with("/sandbox/")) stats_.count_api_cert(peer.x5t);
        try {
            if (ex.path().starts_with("/sandbox/"))
                co_await admin_(ex);
            else
                co_await handler_(ex);
        } catch (const std::exception& e) {
            failed = true;
            what = e.what();
        }
        if (failed) {
            log::error("sandbox_handler_failed",
                       {{"service", name_}, {"target", ex.target()}, {"error", what}});
            ex.close = true;
            if (!ex.responded && !ex.reset)
                co_await ex.send_error(http::status::internal_server_error,
                                       "sandbox handler failed: " + what);
        }
        RequestRecord rec;
        rec.service = name_;
        rec.method = std::string(parser.get().method_string());
        rec.path = std::string(ex.path());
        rec.status = ex.status;
        rec.resumed = peer.resumed;
        rec.conn_cert_x5t = peer.x5t;
        rec.token_cnf_x5t = ex.token_cnf_x5t;
        rec.bound = ex.bound;
        if (!rec.path.starts_with("/sandbox/")) stats_.record(std::move(rec));
        reset = ex.reset;
        if (ex.reset || ex.close || !ex.responded || !parser.get().keep_alive() ||
            !parser.is_done())
            break;
    }
    if (!reset && beast::get_lowest_layer(stream).socket().is_open()) {
        beast::get_lowest_layer(stream).expires_after(1s);
        co_await stream.async_shutdown(redirect_error(use_awaitable, ec));
    }
}

}  // namespace mtls::sandbox
