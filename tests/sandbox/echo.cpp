#include "tests/sandbox/echo.hpp"

#include "tests/sandbox/form.hpp"
#include "tests/sandbox/pem.hpp"

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>

#include <charconv>

namespace mtls::sandbox {
namespace {

using asio::redirect_error;
using asio::use_awaitable;

std::optional<std::uint64_t> number(std::string_view s) {
    std::uint64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc{} || p != s.data() + s.size() || s.empty()) return std::nullopt;
    return v;
}

bool query_flag(std::string_view query, std::string_view name, std::string_view value) {
    auto form = Form::parse(query);
    if (!form) return false;
    auto v = form->get(name);
    return v && (*v == value || *v == "1" || *v == "true");
}

// ?piece=N (1..65536): the body goes out in writes of at most N bytes, one TLS record
// each; 0 when absent or out of range (whole 64 KiB pieces).
std::size_t echo_piece_query(std::string_view query) {
    auto form = Form::parse(query);
    if (!form) return 0;
    auto v = form->get("piece");
    if (!v) return 0;
    auto n = number(*v);
    return n && *n >= 1 && *n <= 64 * 1024 ? static_cast<std::size_t>(*n) : 0;
}

// ?framing=close: the body without Content-Length or chunking, ended by closing the
// connection (close_notify, then FIN); ?framing=cut: the same, but the TCP connection is
// closed without close_notify (a truncation the client must not take as the end).
enum class EchoFraming { normal, until_close, cut };
EchoFraming echo_framing_query(std::string_view query) {
    auto form = Form::parse(query);
    auto v = form ? form->get("framing") : std::nullopt;
    if (v && *v == "close") return EchoFraming::until_close;
    if (v && *v == "cut") return EchoFraming::cut;
    return EchoFraming::normal;
}

Task<void> drain(Exchange& ex) {
    (void)co_await ex.read_body(16u << 20);
}

// Reads the next piece of the request body into buf; nullopt (and ex.close) when the read
// failed.
Task<std::optional<std::size_t>> read_body_piece(Exchange& ex, std::string& buf) {
    auto& body = ex.parser().get().body();
    body.data = buf.data();
    body.size = buf.size();
    ex.refresh_timeout();
    beast::error_code ec;
    co_await http::async_read(ex.stream(), ex.buffer(), ex.parser(),
                              redirect_error(use_awaitable, ec));
    if (ec == http::error::need_buffer) ec = {};
    if (ec) {
        ex.close = true;
        co_return std::nullopt;
    }
    co_return buf.size() - body.size;
}

// Streams `total` bytes of a repeating pattern, or the request body when echo_body; the
// pattern in writes of at most `write_max` bytes when not 0 (the same bytes either way),
// without framing when `until_close` (the connection closes after it).
Task<void> stream_response(Exchange& ex, bool echo_body, std::uint64_t total, bool chunked,
                           std::string content_type, std::size_t write_max = 0,
                           bool until_close = false) {
    http::response<http::buffer_body> res{http::status::ok, ex.req().version()};
    res.set(http::field::server, "partner-sandbox");
    res.set(http::field::content_type, content_type);
    if (echo_body) {
        auto len = ex.parser().content_length();
        if (len && !chunked)
            res.content_length(*len);
        else
            res.chunked(true);
    } else if (chunked) {
        res.chunked(true);
    } else if (until_close) {
        ex.close = true;
    } else {
        res.content_length(total);
    }
    res.keep_alive(ex.req().keep_alive() && !ex.close);
    res.body().data = nullptr;
    res.body().more = true;
    http::response_serializer<http::buffer_body> sr{res};
    ex.responded = true;
    ex.status = 200;

    beast::error_code ec;
    if (echo_body) co_await ex.continue_if_expected();
    ex.refresh_timeout();
    co_await http::async_write_header(ex.stream(), sr, redirect_error(use_awaitable, ec));
    if (ec) {
        ex.close = true;
        co_return;
    }
    // HEAD: the header says what a GET would send (RFC 9110 §9.3.2), and nothing follows.
    if (ex.req().method() == http::verb::head) co_return;
    static const std::string pattern = [] {
        std::string p(64 * 1024, '\0');
        for (size_t i = 0; i < p.size(); ++i) p[i] = static_cast<char>('a' + i % 26);
        return p;
    }();
    std::string buf(64 * 1024, '\0');
    std::uint64_t sent = 0;
    for (;;) {
        size_t n = 0;
        const char* data = nullptr;
        if (echo_body) {
            if (ex.parser().is_done()) break;
            auto piece = co_await read_body_piece(ex, buf);
            if (!piece) co_return;
            n = *piece;
            data = buf.data();
        } else {
            if (sent >= total) break;
            const std::size_t at = static_cast<std::size_t>(sent % pattern.size());
            n = static_cast<size_t>(std::min<std::uint64_t>(pattern.size() - at, total - sent));
            if (write_max != 0) n = std::min(n, write_max);
            data = pattern.data() + at;
        }
        if (n == 0) continue;
        sent += n;
        res.body().data = const_cast<char*>(data);
        res.body().size = n;
        res.body().more = true;
        ex.refresh_timeout();
        co_await http::async_write(ex.stream(), sr, redirect_error(use_awaitable, ec));
        if (ec == http::error::need_buffer) ec = {};
        if (ec) {
            ex.close = true;
            co_return;
        }
    }
    res.body().data = nullptr;
    res.body().size = 0;
    res.body().more = false;
    ex.refresh_timeout();
    co_await http::async_write(ex.stream(), sr, redirect_error(use_awaitable, ec));
    if (ec) ex.close = true;
}

// Reads the request body in 64 KiB pieces and drops it; nullopt when the read failed.
Task<std::optional<std::uint64_t>> sink_body(Exchange& ex) {
    co_await ex.continue_if_expected();
    std::string buf(64 * 1024, '\0');
    std::uint64_t got = 0;
    while (!ex.parser().is_done()) {
        auto piece = co_await read_body_piece(ex, buf);
        if (!piece) co_return std::nullopt;
        got += *piece;
    }
    co_return got;
}

nlohmann::json headers_json(Exchange& ex, const TokenView& token) {
    nlohmann::json map = nlohmann::json::object(), list = nlohmann::json::array();
    for (auto& f : ex.req()) {
        std::string name(f.name_string()), value(f.value());
        list.push_back({name, value});
        std::string lower = name;
        std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
        if (map.contains(lower))
            map[lower] = map[lower].get<std::string>() + ", " + value;
        else
            map[lower] = value;
    }
    nlohmann::json tls = {{"version", ex.peer.version}, {"resumed", ex.peer.resumed}};
    if (ex.peer.cert)
        tls["client_certificate"] = cert_json(ex.peer.cert.get());
    else
        tls["client_certificate"] = nullptr;
    return {{"method", std::string(ex.req().method_string())},
            {"target", std::string(ex.target())},
            {"version", ex.req().version() == 11 ? "HTTP/1.1" : "HTTP/1.0"},
            {"headers", map},
            {"header_list", list},
            {"tls", tls},
            {"token", token.to_json()}};
}

}  // namespace

Task<void> handle_echo(Exchange& ex, const TokenView& token) {
    std::string_view path = ex.path();
    path.remove_prefix(std::string_view("/echo/").size());
    auto arg = [&](std::string_view prefix) -> std::optional<std::string_view> {
        if (!path.starts_with(prefix)) return std::nullopt;
        return path.substr(prefix.size());
    };
    // ?close=1 on any echo endpoint: answer with Connection: close and close (a partner that
    // never keeps connections alive: bench/'s handshake-bound scenario).
    if (query_flag(ex.query(), "close", "1")) ex.close = true;

    if (auto code = arg("status/")) {
        co_await drain(ex);
        auto n = number(*code);
        if (!n || *n < 200 || *n > 599) {
            co_await ex.send_error(http::status::bad_request, "status must be 200..599");
            co_return;
        }
        auto res = ex.make(static_cast<http::status>(*n));
        if (*n != 204 && *n != 304) {
            res.set(http::field::content_type, "application/json");
            res.body() = nlohmann::json{{"status", *n}}.dump();
        }
        co_await ex.send(std::move(res));
    } else if (path == "headers") {
        auto body = co_await ex.read_body(16u << 20);
        auto j = headers_json(ex, token);
        j["body_bytes"] = body ? body->size() : 0;
        co_await ex.send_json(http::status::ok, j);
    } else if (path == "body") {
        // (GCC 12: no conditional-expression temporaries inside co_await arguments; they
        // can be destroyed twice.)
        std::string type = ex.header(http::field::content_type);
        if (type.empty()) type = "application/octet-stream";
        bool chunked = query_flag(ex.query(), "chunked", "1");
        co_await stream_response(ex, true, 0, chunked, std::move(type));
    } else if (path == "sink") {
        auto got = co_await sink_body(ex);
        if (!got) co_return;  // the client went away or sent a broken body
        nlohmann::json j = {{"bytes", *got}};
        co_await ex.send_json(http::status::ok, std::move(j));
    } else if (auto count = arg("bytes/")) {
        co_await drain(ex);
        auto n = number(*count);
        if (!n || *n > (std::uint64_t{16} << 30)) {
            co_await ex.send_error(http::status::bad_request, "bad byte count");
            co_return;
        }
        bool chunked =
            query_flag(ex.query(), "chunked", "1") || query_flag(ex.query(), "mode", "chunked");
        const EchoFraming framing = echo_framing_query(ex.query());
        co_await stream_response(ex, false, *n, chunked, "application/octet-stream",
                                 echo_piece_query(ex.query()), framing != EchoFraming::normal);
        if (framing == EchoFraming::cut && !chunked) {
            auto& sock = beast::get_lowest_layer(ex.stream()).socket();
            beast::error_code ec;
            sock.shutdown(asio::socket_base::shutdown_both, ec);  // FIN, no close_notify
            sock.close(ec);
            ex.reset = true;
        }
    } else if (auto ms = arg("slow/")) {
        auto n = number(*ms);
        if (!n || *n > 600000) {
            co_await drain(ex);
            co_await ex.send_error(http::status::bad_request, "bad delay");
            co_return;
        }
        co_await drain(ex);
        asio::steady_timer t(co_await asio::this_coro::executor);
        t.expires_after(std::chrono::milliseconds(*n));
        co_await t.async_wait(use_awaitable);
        {
            nlohmann::json body_ = {{"slept_ms", *n}};
            co_await ex.send_json(http::status::ok, std::move(body_));
        }
    } else if (path == "reset") {
        co_await drain(ex);
        // Promise a long body, send a little of it, then reset the TCP connection.
        auto res = ex.make(http::status::ok);
        res.set(http::field::content_type, "application/octet-stream");
        res.content_length(1048576);  // deliberately more than is sent
        res.body() = std::string(1000, 'x');
        res.keep_alive(false);
        beast::error_code ec;
        ex.refresh_timeout();
        co_await http::async_write(ex.stream(), res, redirect_error(use_awaitable, ec));
        auto& sock = beast::get_lowest_layer(ex.stream()).socket();
        sock.set_option(asio::socket_base::linger(true, 0), ec);
        sock.close(ec);
        ex.responded = true;
        ex.status = 200;
        ex.reset = true;
        ex.close = true;
    } else {
        co_await drain(ex);
        co_await ex.send_error(http::status::not_found, "unknown echo endpoint");
    }
}

}  // namespace mtls::sandbox
