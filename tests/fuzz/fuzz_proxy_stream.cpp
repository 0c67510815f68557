// The proxy's message moving without sockets (agent/proxy/http_feed.hpp): arbitrary bytes
// arrive in arbitrary pieces and are fed to Beast's parser as the session feeds them — head
// first, then the body through a small window — as a request and as a response. When a
// message comes out complete, what the proxy would write for it (append_head of the head,
// the body raw or re-framed as one chunk) must parse back to the same start line, the
// same fields and the same body: nothing the proxy writes can split into another message
// or smuggle a field.
#include "agent/proxy/http_feed.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

using namespace mtls;
using namespace mtls::proxy;
namespace http = net::http;

namespace {

struct Moved {
    bool complete = false;
    std::string head;  // as the proxy writes it
    std::size_t fields = 0;
    bool chunked = false;
    std::string body;
};

// Feeds `in` in pieces of `piece` bytes, body through a window of `window` bytes.
template <bool isRequest>
Moved move(std::string_view in, std::size_t piece, std::size_t window) {
    Moved m;
    http::parser<isRequest, http::buffer_body> p;
    p.header_limit(16384);
    p.body_limit(1u << 20);
    net::beast::flat_buffer b(1u << 20);
    std::size_t at = 0;
    auto more = [&]() {
        if (at >= in.size()) return false;
        std::size_t n = std::min(piece, in.size() - at);
        auto space = b.prepare(n);
        std::memcpy(space.data(), in.data() + at, n);
        b.commit(n);
        at += n;
        return true;
    };
    net::error_code ec;
    for (;;) {
        Feed f = feed_head(b, p, ec);
        if (f == Feed::error) return m;
        if (f == Feed::done) break;
        if (!more()) {
            feed_eof(p, ec);
            return m;  // a head cut short never completes
        }
    }
    append_head(m.head, p.get().base());
    for (const auto& fld : p.get().base()) (void)fld, ++m.fields;
    m.chunked = p.chunked() && !p.is_done();  // 1xx, 204, 304: no body, no framing
    std::vector<char> win(window);
    for (;;) {
        p.get().body().data = win.data();
        p.get().body().size = win.size();
        Feed f = feed_body(b, p, ec);
        m.body.append(win.data(), win.size() - p.get().body().size);
        if (f == Feed::error) return m;
        if (f == Feed::done) break;
        if (f == Feed::window_full) continue;
        if (!more()) {
            feed_eof(p, ec);
            if (ec || !p.is_done()) return m;
            break;
        }
    }
    m.complete = true;
    return m;
}

template <bool isRequest>
void round_trip(const Moved& m) {
    if (!m.complete) return;
    std::string wire = m.head;
    std::string size_line;
    for (const auto& b : body_piece(size_line, m.chunked, m.body.data(), m.body.size(), true))
        wire.append(static_cast<const char*>(b.data()), b.size());
    http::parser<isRequest, http::string_body> again;
    again.header_limit(1u << 20);
    again.body_limit(1u << 20);
    again.eager(true);
    net::error_code ec;
    std::size_t used = again.put(net::asio::buffer(wire), ec);
    if (!ec && !again.is_done()) again.put_eof(ec);  // a body that runs to the close
    if (ec) __builtin_trap();
    if (!again.is_done()) __builtin_trap();
    if (used != wire.size()) __builtin_trap();  // the head says it ends before what we wrote
    std::size_t fields = 0;
    for (const auto& fld : again.get().base()) (void)fld, ++fields;
    if (fields != m.fields) __builtin_trap();
    if (again.get().body() != m.body) __builtin_trap();
    std::string head2;
    proxy::append_head(head2, again.get().base());
    if (head2 != m.head) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 2) return 0;
    const std::size_t piece = 1 + data[0] % 32;
    const std::size_t window = 1 + data[1] % 64;
    std::string_view in(reinterpret_cast<const char*>(data + 2), size - 2);
    round_trip<true>(move<true>(in, piece, window));
    round_trip<false>(move<false>(in, piece, window));
    return 0;
}
