#include "tests/sandbox/admin.hpp"

#include "common/log.hpp"
#include "tests/sandbox/form.hpp"

#include <array>

namespace mtls::sandbox {

Task<void> Admin::handle(Exchange& ex) {
    auto path = ex.path();
    bool get = ex.req().method() == http::verb::get;
    bool post = ex.req().method() == http::verb::post;
    auto body = co_await ex.read_body(64 * 1024);
    if (path == "/sandbox/stats" && get) {
        co_await ex.send_json(http::status::ok, stats_.to_json());
    } else if (path == "/sandbox/stats/reset" && post) {
        stats_.reset();
        co_await ex.send_json(http::status::ok, stats_.to_json());
    } else if (path == "/sandbox/requests" && get) {
        co_await ex.send_json(http::status::ok, stats_.records_json());
    } else if (path == "/sandbox/info" && get) {
        co_await ex.send_json(http::status::ok, info_);
    } else if (path == "/sandbox/mode" && (get || post)) {
        if (post) {
            auto q = Form::parse(ex.query());
            auto b = Form::parse(body ? *body : std::string{});
            if (!q || !b) {
                co_await ex.send_error(http::status::bad_request, "malformed query");
                co_return;
            }
            const std::array<const Form*, 2> forms = {&*q, &*b};
            for (const Form* f : forms) {
                // Apply sub-settings (delay, error, variant) before the mode itself.
                for (int pass = 0; pass < 2; ++pass)
                    for (auto& [k, v] : f->pairs()) {
                        bool primary = k == "as" || k == "est";
                        if ((pass == 0) == primary) continue;
                        auto err = modes_.apply(k, v);
                        if (!err.empty()) {
                            co_await ex.send_error(http::status::bad_request, err);
                            co_return;
                        }
                    }
            }
            log::info("sandbox_mode", {{"modes", modes_.to_json().dump()}});
        }
        co_await ex.send_json(http::status::ok, modes_.to_json());
    } else if (revocation_ && (path == "/sandbox/revocation" || path == "/sandbox/revoke")) {
        std::string text = body ? std::move(*body) : std::string();
        co_await revocation_->handle(ex, std::move(text));
    } else {
        co_await ex.send_error(http::status::not_found, "unknown sandbox endpoint");
    }
}

}  // namespace mtls::sandbox
