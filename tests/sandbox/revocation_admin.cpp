#include "tests/sandbox/revocation_admin.hpp"

#include "common/log.hpp"
#include "tests/sandbox/form.hpp"

#include <array>

namespace mtls::sandbox {

Task<void> RevocationAdmin::handle(Exchange& ex, std::string body) {
    const auto path = ex.path();
    const bool post = ex.req().method() == http::verb::post;
    auto q = Form::parse(ex.query());
    auto b = Form::parse(body);
    if (!q || !b) {
        co_await ex.send_error(http::status::bad_request, "malformed query");
        co_return;
    }
    // (A std::array, not a braced list: GCC 12 mishandles initializer_list in coroutines.)
    const std::array<const Form*, 2> forms = {&*q, &*b};
    auto param = [&forms](const std::string& k) -> std::string {
        for (const Form* f : forms)
            for (auto& [key, v] : f->pairs())
                if (key == k) return v;
        return {};
    };
    if (path == "/sandbox/revoke" && post) {
        std::string serial = param("serial");
        const std::string which = param("cert");
        if (which == "partner-leaf")
            serial = partner_leaf_serial;
        else if (which == "intermediate")
            serial = intermediate_serial;
        else if (!which.empty()) {
            co_await ex.send_error(http::status::bad_request,
                                   "cert must be partner-leaf or intermediate");
            co_return;
        }
        if (serial.empty()) {
            co_await ex.send_error(http::status::bad_request, "give serial=HEX or cert=…");
            co_return;
        }
        if (auto err = revocations.revoke(serial, param("reason")); !err.empty()) {
            co_await ex.send_error(http::status::bad_request, err);
            co_return;
        }
        log::info("sandbox_revoked", {{"serial", serial}, {"reason", param("reason")}});
        if (stapler) stapler->refresh_now();
    } else if (path == "/sandbox/revocation" && post) {
        const auto staple = param("staple"), crl = param("crl");
        if (!staple.empty()) {
            if (!stapler || (staple != "on" && staple != "off")) {
                co_await ex.send_error(http::status::bad_request,
                                       "staple=on|off (needs an OCSP URL)");
                co_return;
            }
            stapler->set_enabled(staple == "on");
        }
        if (!crl.empty()) {
            if (crl != "up" && crl != "down") {
                co_await ex.send_error(http::status::bad_request, "crl=up|down");
                co_return;
            }
            crl_server.set_down(crl == "down");
        }
    } else if (path != "/sandbox/revocation") {
        co_await ex.send_error(http::status::not_found, "unknown sandbox endpoint");
        co_return;
    }
    nlohmann::json j = revocations.to_json();
    j["urls"] = urls;
    j["crl_requests"] = crl_server.requests();
    j["partner_leaf_serial"] = partner_leaf_serial;
    j["intermediate_serial"] = intermediate_serial;
    if (stapler) j["staple"] = stapler->to_json();
    co_await ex.send_json(http::status::ok, std::move(j));
}

}  // namespace mtls::sandbox
