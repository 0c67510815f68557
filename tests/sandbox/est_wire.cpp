#include "tests/sandbox/est_wire.hpp"

#include "common/encoding.hpp"
#include "common/ossl.hpp"

#include <openssl/bio.h>
#include <openssl/evp.h>

#include <boost/asio/redirect_error.hpp>

#include <climits>

namespace mtls::sandbox {

std::optional<std::string> bio_base64_decode(std::string_view text) {
    if (text.size() > INT_MAX) return std::nullopt;
    ossl::Bio mem(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
    ossl::Bio b64(BIO_new(BIO_f_base64()));
    if (!mem || !b64) return std::nullopt;
    BIO* chain = BIO_push(b64.release(), mem.release());
    ossl::Bio hold(chain);
    std::string out;
    char buf[4096];
    for (;;) {
        const int n = BIO_read(chain, buf, sizeof buf);
        if (n <= 0) break;
        out.append(buf, static_cast<std::size_t>(n));
    }
    if (out.empty()) return std::nullopt;
    return out;
}

std::string est_base64_body(std::string_view der, bool oneline) {
    if (!oneline) return encoding::base64_lines(der);
    std::string s = encoding::base64(der);
    while (!s.empty() && s.back() == '=') s.pop_back();
    return s;
}

Task<void> send_close_delimited(Exchange& ex, StringResponse res) {
    ex.close = true;
    res.keep_alive(false);
    res.erase(http::field::content_length);
    res.erase(http::field::transfer_encoding);
    // Serialize the header alone (Beast would add a length to a prepared message), then the
    // body's bytes, then close: the client learns the body's end from the close.
    http::response<http::empty_body> head{res.result(), res.version()};
    for (const auto& f : res) head.set(f.name_string(), f.value());
    head.keep_alive(false);
    http::response_serializer<http::empty_body> sr{head};
    beast::error_code ec;
    ex.refresh_timeout();
    ex.status = res.result_int();
    ex.responded = true;
    co_await http::async_write_header(ex.stream(), sr,
                                      asio::redirect_error(asio::use_awaitable, ec));
    if (!ec)
        co_await asio::async_write(ex.stream(), asio::buffer(res.body()),
                                   asio::redirect_error(asio::use_awaitable, ec));
}

}  // namespace mtls::sandbox
