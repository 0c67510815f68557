#include "tests/sandbox/unsolicited.hpp"

#include "tests/sandbox/form.hpp"

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>

#include <charconv>

namespace mtls::sandbox {

using asio::redirect_error;
using asio::use_awaitable;

Unsolicited unsolicited_for(Exchange& ex) {
    Unsolicited u;
    auto form = Form::parse(ex.query());
    if (!form) return u;
    auto kind = form->get("extra");
    if (kind == "response")
        u.kind = Unsolicited::Kind::response;
    else if (kind == "body")
        u.kind = Unsolicited::Kind::body;
    else
        return u;
    if (auto d = form->get("extra_delay_ms")) {
        std::uint64_t v = 0;
        auto [p, ec] = std::from_chars(d->data(), d->data() + d->size(), v);
        if (ec == std::errc{} && p == d->data() + d->size() && v <= 60000) u.delay_ms = v;
    }
    if (u.kind == Unsolicited::Kind::body) {
        u.body = std::make_shared<std::string>();
        ex.decorate = [body = u.body](StringResponse& res) { *body = res.body(); };
    }
    return u;
}

Task<void> send_unsolicited(Exchange& ex, const Unsolicited& u, Stats& stats) {
    if (u.kind == Unsolicited::Kind::none || !ex.responded || ex.close || ex.reset) co_return;
    // What the triggering request looked like, for whoever receives the extra response.
    nlohmann::json headers = nlohmann::json::object();
    for (auto& f : ex.req()) headers[std::string(f.name_string())] = std::string(f.value());
    const std::string target(ex.target());
    const std::uint64_t n = stats.unsolicited_sent.load() + 1;  // names the cookie

    if (u.delay_ms > 0) {
        asio::steady_timer t(co_await asio::this_coro::executor);
        t.expires_after(std::chrono::milliseconds(u.delay_ms));
        beast::error_code ec;
        co_await t.async_wait(redirect_error(use_awaitable, ec));
    }
    beast::error_code ec;
    ex.refresh_timeout();
    if (u.kind == Unsolicited::Kind::response) {
        StringResponse res{http::status::ok, 11};
        res.set(http::field::server, "partner-sandbox");
        res.set(http::field::content_type, "application/json");
        res.set(http::field::set_cookie,
                "sandbox-session=unsolicited-" + std::to_string(n) + "; Path=/; Secure; HttpOnly");
        nlohmann::json body = {{"unsolicited", true}, {"after", target}, {"headers", headers}};
        res.body() = body.dump();
        res.keep_alive(true);
        res.prepare_payload();
        co_await http::async_write(ex.stream(), res, redirect_error(use_awaitable, ec));
    } else if (u.body && !u.body->empty()) {
        co_await asio::async_write(ex.stream(), asio::buffer(*u.body),
                                   redirect_error(use_awaitable, ec));
    }
    if (ec) {
        ex.close = true;
        co_return;
    }
    ++stats.unsolicited_sent;  // on the wire: tests poll for it
}

}  // namespace mtls::sandbox
