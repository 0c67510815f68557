#include "tests/support/http_load.hpp"

#include <utility>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace mtls::test {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

HttpLoad::HttpLoad(std::uint16_t port, std::string target, int connections, Check check)
    : port_(port), target_(std::move(target)), check_(std::move(check)) {
    for (int i = 0; i < connections; ++i) threads_.emplace_back([this] { worker(); });
}

HttpLoad::~HttpLoad() {
    stop();
}

LoadReport HttpLoad::stop() {
    if (stopped_) return report_;
    stop_ = true;
    for (auto& t : threads_) t.join();
    stopped_ = true;
    report_.sent = sent_;
    report_.ok = ok_;
    report_.failed = failed_;
    report_.reconnects = reconnects_;
    std::lock_guard lock(mu_);
    report_.samples = samples_;
    return report_;
}

void HttpLoad::fail(std::string why) {
    ++failed_;
    std::lock_guard lock(mu_);
    if (samples_.size() < 10) samples_.push_back(std::move(why));
}

void HttpLoad::worker() {
    asio::io_context io;
    const asio::ip::tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), port_);
    while (!stop_) {
        beast::tcp_stream s(io);
        beast::error_code ec;
        s.socket().connect(ep, ec);
        if (ec) {
            fail("connect: " + ec.message());
            continue;
        }
        beast::flat_buffer buf;
        // Keep-alive: many requests per connection, until an error or the proxy closes.
        while (!stop_) {
            http::request<http::empty_body> req(http::verb::get, target_, 11);
            req.set(http::field::host, "127.0.0.1");
            ++sent_;
            http::write(s.socket(), req, ec);
            http::response<http::string_body> res;
            if (!ec) http::read(s.socket(), buf, res, ec);
            if (ec) {
                fail("request " + std::to_string(sent_.load()) + ": " + ec.message());
                break;
            }
            auto why = check_(res.result_int(), res.body());
            if (why.empty())
                ++ok_;
            else
                fail(std::to_string(res.result_int()) + ": " + why + ": " +
                     res.body().substr(0, 300));
            if (!res.keep_alive()) break;
        }
        s.socket().close(ec);
        if (!stop_) ++reconnects_;
    }
}

}  // namespace mtls::test
