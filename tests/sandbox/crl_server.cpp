#include "tests/sandbox/crl_server.hpp"

#include "common/log.hpp"

namespace mtls::sandbox {

CrlServer::CrlServer(asio::io_context& io) : io_(io), acceptor_(io) {}

void CrlServer::listen(const asio::ip::address& addr, std::uint16_t port) {
    tcp::endpoint ep(addr, port);
    acceptor_.open(ep.protocol());
    acceptor_.set_option(asio::socket_base::reuse_address(true));
    acceptor_.bind(ep);
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
    asio::co_spawn(io_, accept_loop(), asio::detached);
}

void CrlServer::stop() {
    asio::post(io_, [this] {
        beast::error_code ec;
        acceptor_.close(ec);
    });
}

Task<void> CrlServer::accept_loop() {
    while (acceptor_.is_open()) {
        beast::error_code ec;
        tcp::socket s =
            co_await acceptor_.async_accept(asio::redirect_error(asio::use_awaitable, ec));
        if (ec) {
            if (!acceptor_.is_open()) co_return;
            continue;
        }
        if (down_) {
            s.close(ec);
            continue;
        }
        asio::co_spawn(io_, serve(std::move(s)), asio::detached);
    }
}

Task<void> CrlServer::serve(tcp::socket socket) {
    beast::tcp_stream stream(std::move(socket));
    beast::flat_buffer buf;
    for (;;) {
        stream.expires_after(std::chrono::seconds(10));
        http::request<http::string_body> req;
        beast::error_code ec;
        co_await http::async_read(stream, buf, req, asio::redirect_error(asio::use_awaitable, ec));
        if (ec) co_return;
        ++requests_;
        http::response<http::string_body> res;
        res.version(req.version());
        res.keep_alive(req.keep_alive());
        res.set(http::field::server, "partner-sandbox");
        const auto target = std::string(req.target());
        const bool root = target == "/crl/root.crl";
        if (revocations_ && req.method() == http::verb::get &&
            (root || target == "/crl/issuing.crl")) {
            res.result(http::status::ok);
            res.set(http::field::content_type, "application/pkix-crl");
            res.set(http::field::cache_control, "max-age=60");
            res.body() = revocations_->crl_der(root);
        } else {
            res.result(http::status::not_found);
            res.set(http::field::content_type, "text/plain");
            res.body() = "no such CRL\n";
        }
        res.prepare_payload();
        log::info("sandbox_crl_request", {{"target", target}, {"status", res.result_int()}});
        co_await http::async_write(stream, res, asio::redirect_error(asio::use_awaitable, ec));
        if (ec || !req.keep_alive()) co_return;
    }
}

}  // namespace mtls::sandbox
