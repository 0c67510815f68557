#include "agent/daemon/metrics_http.hpp"

#include "agent/net/accept_guard.hpp"
#include "agent/proxy/listener.hpp"
#include "agent/proxy/router.hpp"
#include "common/log.hpp"
#include "common/text.hpp"

#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>

namespace mtls::daemon {

namespace asio = net::asio;
namespace http = net::http;

bool metrics_host_allowed(std::string_view host, const std::vector<std::string>& allowed) {
    std::string_view name = proxy::host_without_port(text::trim_ows(host));
    if (name.size() > 1 && name.back() == '.') name.remove_suffix(1);  // "localhost."
    // A rebinding page needs a name it controls: an address literal cannot be one.
    net::error_code ec;
    net::asio::ip::make_address(std::string(name), ec);
    if (!ec || text::iequals(name, "localhost")) return true;
    char self[256] = {};
    if (::gethostname(self, sizeof self - 1) == 0 && text::iequals(name, self)) return true;
    return std::any_of(allowed.begin(), allowed.end(),
                       [&](const std::string& a) { return a == "*" || text::iequals(a, name); });
}

MetricsHttp::MetricsHttp(asio::io_context& io, const std::string& listen, Text metrics,
                         std::function<Health()> health, std::function<Health()> ready)
    : io_(io),
      acceptor_(io),
      metrics_(std::move(metrics)),
      health_(std::move(health)),
      ready_(std::move(ready)),
      listen_(listen) {
    net::tcp::endpoint ep;
    try {
        ep = proxy::parse_listen_address(listen);
    } catch (const std::exception& e) {
        throw std::runtime_error("metrics.listen \"" + listen + "\": " + e.what());
    }
    net::error_code ec;
    acceptor_.open(ep.protocol(), ec);
    if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(ep, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec)
        throw std::runtime_error("cannot listen on metrics.listen " + listen + ": " + ec.message());
}

void MetricsHttp::start() {
    if (started_) return;
    started_ = true;
    asio::co_spawn(io_, accept_loop(), asio::detached);
    log::info("metrics.listening", {{"address", listen_}});
}

void MetricsHttp::stop() {
    net::error_code ec;
    acceptor_.close(ec);
}

net::awaitable<void> MetricsHttp::accept_loop() {
    // Out of file descriptors: refuse who waits and pause (never retry at once).
    net::AcceptBackoff backoff;
    asio::steady_timer pause(io_);
    for (;;) {
        net::error_code ec;
        auto sock = co_await acceptor_.async_accept(net::use_ec(ec));
        if (!acceptor_.is_open()) co_return;
        if (ec && net::out_of_descriptors(ec)) {
            net::shed_pending(acceptor_.native_handle(), {});
            pause.expires_after(backoff.next());
            co_await pause.async_wait(net::use_ec(ec));
            if (!acceptor_.is_open()) co_return;
            continue;
        }
        if (ec) continue;
        backoff.reset();
        if (open_ >= kMaxConnections) {  // full: close at once, never queue
            sock.close(ec);
            continue;
        }
        asio::co_spawn(io_, serve(std::move(sock)), asio::detached);
    }
}

net::awaitable<void> MetricsHttp::serve(net::tcp::socket sock) {
    ++open_;
    struct Counted {
        std::size_t& n;
        ~Counted() { --n; }
    } counted{open_};
    net::beast::tcp_stream stream(std::move(sock));
    net::beast::flat_buffer buf;
    http::request_parser<http::empty_body> parser;
    parser.header_limit(8192);
    stream.expires_after(std::chrono::seconds(10));
    net::error_code ec;
    co_await http::async_read(stream, buf, parser, net::use_ec(ec));
    if (ec) co_return;
    const auto& req = parser.get();
    http::response<http::string_body> res;
    res.version(11);
    res.keep_alive(false);
    std::string target(req.target());
    const auto host = req.find(http::field::host);
    if (host != req.end() && !metrics_host_allowed(host->value(), allowed_hosts_)) {
        res.result(http::status::forbidden);
        res.set(http::field::content_type, "application/json");
        nlohmann::json e{
            {"error", "host_not_allowed"},
            {"message", "Host \"" + std::string(host->value().substr(0, 100)) +
                            "\" is not this agent's name (an IP address, localhost or the host "
                            "name): a web page may be using DNS rebinding; if monitoring does "
                            "scrape by this name, list it in metrics.allowed_hosts"}};
        res.body() = e.dump();
    } else if (req.method() != http::verb::get && req.method() != http::verb::head) {
        res.result(http::status::method_not_allowed);
        res.set(http::field::allow, "GET, HEAD");
    } else if (target == "/metrics") {
        res.result(http::status::ok);
        res.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
        res.body() = metrics_();
    } else if (target == "/healthz" || target == "/readyz") {
        auto h = target == "/healthz" ? health_() : ready_();
        res.result(h.ok ? http::status::ok : http::status::service_unavailable);
        res.set(http::field::content_type, "application/json");
        res.body() = h.json;
    } else if (target == "/livez") {
        res.result(http::status::ok);
        res.set(http::field::content_type, "application/json");
        res.body() = R"({"alive":true})";
    } else {
        res.result(http::status::not_found);
        res.set(http::field::content_type, "application/json");
        res.body() =
            R"({"error":"not_found","message":"try /metrics, /healthz, /readyz or /livez"})";
    }
    if (req.method() == http::verb::head) {
        res.content_length(res.body().size());
        http::response_serializer<http::string_body> sr(res);
        sr.split(true);
        co_await http::async_write_header(stream, sr, net::use_ec(ec));
    } else {
        res.prepare_payload();
        co_await http::async_write(stream, res, net::use_ec(ec));
    }
    stream.socket().shutdown(net::tcp::socket::shutdown_send, ec);
}

}  // namespace mtls::daemon
