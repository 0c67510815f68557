#include "agent/proxy/session.hpp"

#include <sys/ioctl.h>

#include "agent/proxy/errors.hpp"
#include "agent/proxy/header_rules.hpp"
#include "agent/proxy/http_io.hpp"
#include "agent/proxy/plain_stream.hpp"
#include "agent/proxy/upstream_pool.hpp"
#include "agent/token/errors.hpp"
#include "common/log.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <limits>
#include <memory>
#include <optional>
#include <span>

namespace mtls::proxy {
namespace {

using namespace std::chrono_literals;
using net::error_code;
namespace http = net::http;
using Clock = std::chrono::steady_clock;
constexpr std::size_t kChunk = 64 * 1024;  // body pieces forwarded at most this large
static_assert(kChunk == BodyBuffers::kSize);
// Bodies up to this size get a buffer of their own size; larger ones a pooled kChunk one.
constexpr std::size_t kSmallBody = 4096;

// A body buffer: a pooled one (given back at the end) or, for a small body, `small` (the
// request state's own, kSmallBody bytes).
class BodyBuffer {
  public:
    BodyBuffer(const std::shared_ptr<BodyBuffers>& pool, std::size_t size, char* small)
        : pool_(size > kSmallBody || small == nullptr ? pool : nullptr),
          buf_(pool_ ? pool_->take() : nullptr),
          data_(pool_ ? buf_.get() : small) {}
    ~BodyBuffer() {
        if (pool_) pool_->give(std::move(buf_));
    }
    BodyBuffer(const BodyBuffer&) = delete;
    BodyBuffer& operator=(const BodyBuffer&) = delete;
    char* get() const { return data_; }

  private:
    std::shared_ptr<BodyBuffers> pool_;  // kept alive while its buffer is out
    std::unique_ptr<char[]> buf_;
    char* data_;
};
using Buffers = std::span<const net::asio::const_buffer>;

net::asio::const_buffer buf(std::string_view s) {
    return {s.data(), s.size()};
}

long long ms_since(Clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t).count();
}

std::string identity_problem(const identity::IdentityPtr& id) {
    if (!id) return "no valid client certificate (none enrolled yet; see `mtls-agentctl status`)";
    auto now = identity::Identity::Clock::now();
    if (now < id->not_before())
        return "no valid client certificate (the current one is not valid yet; check the clock)";
    return "no valid client certificate (the current one expired and renewal has not "
           "succeeded; see `mtls-agentctl status`)";
}

// No Transfer-Encoding and at most one Content-Length: where the request ends is beyond
// doubt.
bool framing_is_plain(const http::request_header<>& head) {
    std::size_t lengths = 0;
    for (const auto& f : head) {
        if (f.name() == http::field::transfer_encoding) return false;
        if (f.name() == http::field::content_length) ++lengths;
    }
    return lengths <= 1;
}

// A parse error of Beast's HTTP parser (bad chunk, bad length, …), not a transport error.
bool is_http_error(const error_code& ec) {
    return ec && &ec.category() == &http::make_error_code(http::error::bad_chunk).category();
}

// What one request did, for the access log and the counters. The views point into the
// route table and the request parser, which outlive it.
struct Outcome {
    std::string_view route = "-";
    std::string_view method;
    std::string_view path;
    unsigned status = 0;
    std::string error;
    std::uint64_t bytes_in = 0, bytes_out = 0;
    long long upstream_ms = -1;
    bool reused = false, resumed = false;
    int attempts = 0;
    bool proxy_made = false;        // the proxy answered (send_error)
    bool partner_answered = false;  // the partner's response head was forwarded
    bool invalid_token = false;     // … and it was 401 with error="invalid_token"
};

// How a routed request ended, for its route's counters and health.
RequestEnd request_end(const Outcome& out, Clock::time_point t0) {
    RequestEnd end;
    end.status = out.status;
    end.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    if (out.proxy_made) {
        end.answer = RequestEnd::Answer::proxy;
        end.failure = failure_of_code(out.error);
    } else if (out.partner_answered) {
        end.answer = RequestEnd::Answer::partner;
        end.broken = out.error == "upstream_reset";
        if (end.broken)
            end.failure = RouteFailure::upstream_reset;
        else if (out.invalid_token)
            end.failure = RouteFailure::partner_invalid_token;
    }
    return end;
}

}  // namespace

// The streamed request body's uploader and how it ended.
struct SessionUpload {
    explicit SessionUpload(const net::asio::any_io_executor& ex)
        : signal(ex, net::asio::steady_timer::time_point::max()) {}
    bool done = false;
    bool client_failed = false;
    bool body_limit = false;
    error_code client_ec;  // why reading the app's body failed
    error_code ec;         // upstream write error
    net::asio::steady_timer signal;
};

// A request's state (session.hpp): members of the session rather than locals of its
// coroutine frames (which are allocated for every request and are cheapest while they stay
// small), taken from the pool while a request is in flight.
struct RequestState {
    using ResponseParser = http::response_parser<http::buffer_body>;
    net::beast::flat_buffer cbuf;  // the app's bytes; its limit is set by the session
    // The head being written, the chunk-size line.
    std::string wire;
    std::string size_line;
    // The exchange's response parser, token and uploader.
    std::optional<ResponseParser> rp;
    std::optional<token::Token> token;
    std::optional<SessionUpload> upload;
    bool body_done = false;  // the response body is complete (relay_response)
    // The body buffer of a small response (up to kSmallBody), made once per state.
    std::unique_ptr<char[]> small_body;
    char* small_body_buffer() {
        if (!small_body) small_body.reset(new char[kSmallBody]);
        return small_body.get();
    }
};

void RequestStateDelete::operator()(RequestState* s) const noexcept {
    delete s;
}

namespace {
// A read buffer grown past this (a large head, a streamed body) is freed, not kept.
constexpr std::size_t kKeptReadBuffer = 8 * 1024;
constexpr std::size_t kKeptHeadText = 4 * 1024;
}  // namespace

RequestStatePtr RequestStates::take(bool& reused) {
    reused = !free_.empty();
    if (!reused) {
        RequestStatePtr s(new RequestState);
        s->wire.reserve(1024);  // one allocation for the heads we write, not one per doubling
        return s;
    }
    auto s = std::move(free_.back());
    free_.pop_back();
    return s;
}

void RequestStates::give(RequestStatePtr s) {
    if (!s) return;
    if (free_.size() >= kKeep) return;  // s is deleted
    s->rp.reset();
    s->token.reset();
    s->upload.reset();
    s->body_done = false;
    s->cbuf.clear();
    if (s->cbuf.capacity() > kKeptReadBuffer) s->cbuf.shrink_to_fit();
    s->wire.clear();
    if (s->wire.capacity() > kKeptHeadText) {
        std::string().swap(s->wire);
        s->wire.reserve(1024);
    }
    std::string().swap(s->size_line);
    free_.push_back(std::move(s));
}

namespace {

class Session {
  public:
    Session(PlainStream& s, ProxyContext& ctx, Caller caller)
        : client_(s),
          ctx_(ctx),
          listener_(ctx.listener),
          caller_(std::move(caller)),
          member_(
              ctx.drain, [this] { cut(); }, [this] { return has_input(); }) {}

    // Between requests the connection holds no buffer and no coroutine frame: it waits for
    // readability outside any coroutine (AppConnection below), with the idle timeout; serve()
    // runs once it is readable. enter_idle/leave_idle bracket that wait.
    void enter_idle() {
        idle_held_ = held_bytes();
        ctx_.stats.idle_buffer_bytes += idle_held_;  // before the count: a reader that sees
        ++ctx_.stats.connections_idle;               // the connection idle sees its bytes too
        client_deadline();
    }
    void leave_idle() {
        --ctx_.stats.connections_idle;
        ctx_.stats.idle_buffer_bytes -= idle_held_;
    }

    // Serves requests after the idle wait ended with `wait_ec` (a timeout, a failed or cut
    // connection ends the session) until the connection is idle again (true: wait again)
    // or ends (false, after its lingering close). Pipelined requests go on at once.
    net::awaitable<bool> serve(error_code wait_ec) {
        if (!wait_ec) {
            for (;;) {
                take_state();
                bool keep = co_await one_request();
                member_.busy(false);
                release_buffers();
                if (!keep || ctx_.drain.draining()) break;
                if (!rs_) co_return true;  // nothing read ahead: idle
            }
        } else {
            request_started_ = false;
        }
        ctx_.request_states->give(std::move(rs_));
        co_await lingering_close();
        co_return false;
    }

    // Bytes of per-request buffers this connection holds (0 while idle).
    std::size_t held_bytes() const {
        auto heap = [](const std::string& s) { return s.capacity() > 15 ? s.capacity() : 0; };
        if (!rs_) return 0;
        return sizeof(RequestState) + rs_->cbuf.capacity() + heap(rs_->wire) +
               heap(rs_->size_line) + (rs_->small_body ? kSmallBody : 0);
    }
    // Before a request: the request state kept from the last one (it holds the next
    // request's first bytes), or one from the pool.
    void take_state() {
        if (rs_) return;
        bool reused = false;
        rs_ = ctx_.request_states->take(reused);
        rs_->cbuf.max_size(listener_->max_header_bytes + 2 * kChunk);
        if (reused) ++ctx_.stats.request_states_reused;
    }
    // After a request: its state goes back to the pool, unless the read buffer holds the
    // next request's first bytes.
    void release_buffers() {
        if (rs_ && rs_->cbuf.size() == 0) ctx_.request_states->give(std::move(rs_));
    }

  private:
    // Bytes from the app not read yet: kept from the last request, or in the socket's
    // buffer (a graceful stop serves such a connection instead of cutting it: drain.hpp).
    bool has_input() const {
        if (rs_ && rs_->cbuf.size() > 0) return true;
        int waiting = 0;
        return ::ioctl(client_.socket().native_handle(), FIONREAD, &waiting) == 0 && waiting > 0;
    }

    // A stop that does not wait any longer (drain.hpp): both directions of the app's socket
    // and the partner connection of the request in flight are shut, so every pending
    // operation fails and the session ends.
    void cut() {
        error_code ec;
        client_.socket().shutdown(net::asio::socket_base::shutdown_both, ec);
        client_.cancel();
        if (lease_conn_ && *lease_conn_) (*lease_conn_)->close();
    }

    // Closing a socket that holds unread bytes makes the kernel send a reset, which can
    // destroy our last answer before the app reads it — e.g. a 502 given while the app was
    // still uploading a body. Like nginx's lingering_close: when bytes are waiting, send FIN
    // and read and drop what comes until the app closes, is quiet for 1 s, or 5 s passed.
    // Also after any request we answered last: more of its body may still be on its way.
    net::awaitable<void> lingering_close() {
        int waiting = 0;
        if (::ioctl(client_.socket().native_handle(), FIONREAD, &waiting) != 0) waiting = 0;
        if (waiting <= 0 && !request_started_) {  // the app closed, or never sent a request
            client_.shutdown_and_close();
            co_return;
        }
        error_code ec;
        client_.socket().shutdown(net::asio::socket_base::shutdown_send, ec);
        const auto until = Clock::now() + std::chrono::seconds(5);
        std::array<char, 16384> sink;
        while (!ec && Clock::now() < until) {
            client_.expires_after(std::min<std::chrono::milliseconds>(
                std::chrono::seconds(1),
                std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now())));
            co_await client_.read_some(net::asio::buffer(sink), ec);
        }
        client_.shutdown_and_close();
    }

    using Parser = http::request_parser<http::buffer_body>;
    using ResponseParser = http::response_parser<http::buffer_body>;

    // A number as decimal text, valid until the next call.
    std::string_view decimal(std::uint64_t n) {
        auto [end, err] = std::to_chars(number_.data(), number_.data() + number_.size(), n);
        (void)err;  // 24 chars hold any uint64
        return {number_.data(), static_cast<std::size_t>(end - number_.data())};
    }

    void client_deadline() { client_.expires_after(listener_->client_idle); }

    // The error for a request whose identity was burnt while it was under way.
    ProxyError compromised_now() const {
        auto note = ctx_.identities.burn_note();
        return identity_compromised(note.empty() ? "the client certificate this request "
                                                   "started with was declared compromised; "
                                                   "retry with the new one"
                                                 : note);
    }

    void upstream_deadline(UpstreamConnection& c, std::chrono::milliseconds d) {
        auto at = Clock::now() + d;
        if (total_deadline_ && *total_deadline_ < at) at = *total_deadline_;
        c.stream().set_deadline(at);
    }

    // Reading the request head: until the whole head is in rs_->cbuf, refusing obs-fold and
    // oversized heads before Beast parses (Beast would unfold obs-fold silently).
    // client_idle waits for a request to begin; once its first byte is here, the whole head
    // has listener.request_head_timeout, however slowly it trickles in (slowloris: an idle
    // timer restarted by every byte would never fire): `due`.
    struct HeadRead {
        std::optional<ProxyError> result;  // nullopt: the app closed; ProxyError{}: complete
        std::optional<Clock::time_point> due;
        net::asio::mutable_buffer room;  // where the next bytes go (HeadStep::wait)
    };
    enum class HeadStep { done, wait };
    // As far as it goes without waiting, with no coroutine (the connection was readable, or
    // the head is partly here): done (h.result says how), or wait for bytes into h.room.
    HeadStep head_step(HeadRead& h) {
        const std::size_t limit = listener_->max_header_bytes;
        for (;;) {
            auto bytes = rs_->cbuf.data();
            std::string_view sv(static_cast<const char*>(bytes.data()), bytes.size());
            auto end = sv.find("\r\n\r\n");
            if (end != std::string_view::npos) {
                if (end + 4 > limit) break;
                std::string_view head = sv.substr(0, end + 2);
                if (head.find("\r\n ") != std::string_view::npos ||
                    head.find("\r\n\t") != std::string_view::npos)
                    h.result = bad_request("obsolete line folding (obs-fold) in the request head");
                else
                    h.result = ProxyError{};
                return HeadStep::done;
            }
            if (sv.size() >= limit) break;
            if (!sv.empty() && !h.due) h.due = Clock::now() + listener_->request_head_timeout;
            if (h.due) {
                const auto left = *h.due - Clock::now();
                if (left <= Clock::duration::zero()) {
                    h.result =
                        request_timeout("the request head was not complete within " +
                                        std::to_string(listener_->request_head_timeout.count()) +
                                        " ms (listener.request_head_timeout)");
                    return HeadStep::done;
                }
                client_.expires_after(std::min<std::chrono::milliseconds>(
                    listener_->client_idle, std::chrono::ceil<std::chrono::milliseconds>(left)));
            } else {
                client_deadline();
            }
            h.room = rs_->cbuf.prepare(
                std::min<std::size_t>(4096, rs_->cbuf.max_size() - rs_->cbuf.size()));
            // Take what is ready without an asynchronous operation; wait only when nothing is.
            error_code ec;
            auto n = client_.try_read(h.room, ec);
            if (n == 0 && ec == net::asio::error::would_block) return HeadStep::wait;
            if (ec) {
                h.result = std::nullopt;
                return HeadStep::done;
            }
            rs_->cbuf.commit(n);
        }
        h.result = headers_too_large("the request head exceeds " + std::to_string(limit) +
                                     " bytes (listener.max_header_bytes)");
        return HeadStep::done;
    }
    // The rest of the head, once head_step() said wait.
    net::awaitable<void> read_head_block(HeadRead& h) {
        for (;;) {
            error_code ec;
            auto n = co_await client_.read_some(h.room, ec);
            if (ec == net::beast::error::timeout && h.due && Clock::now() >= *h.due) {
                // head_step answers 408
            } else if (ec) {
                h.result = std::nullopt;
                co_return;
            } else {
                rs_->cbuf.commit(n);
            }
            if (head_step(h) == HeadStep::done) co_return;
        }
    }

    net::awaitable<error_code> write_client(Buffers bufs) {
        error_code ec;
        client_deadline();
        co_await client_.write_all(bufs, ec);
        co_return ec;
    }

    // Writes what the app's socket takes now, without a coroutine (no frame to allocate, no
    // trip through the scheduler). true: all of `q` went, or the write failed (`ec`); false:
    // the socket's buffer is full and the rest, q.rest(), goes by write_client.
    bool write_client_now(WriteQueue& q, error_code& ec) {
        ec = {};
        if (q.empty()) return true;
        std::size_t n = client_.try_write(q.rest(), ec);
        if (ec == net::asio::error::would_block) {
            ec = {};
            return false;
        }
        if (ec) return true;
        q.consume(n);
        return q.empty();
    }

    net::awaitable<bool> send_error(const ProxyError& e, unsigned version, bool keep_alive,
                                    Outcome& out) {
        out.status = static_cast<unsigned>(e.status);
        out.error = e.code;
        out.proxy_made = true;
        auto res = error_response(e, version == 10 ? 10 : 11, keep_alive);
        std::string head;
        append_head(head, res.base());
        std::array<net::asio::const_buffer, 2> bufs{buf(head), buf(res.body())};
        error_code ec = co_await write_client(bufs);
        co_return keep_alive && !ec;
    }

    void finish(const Outcome& out, Clock::time_point t0, RouteStats* route) {
        if (route) {
            auto& rs = *route;
            rs.record(request_end(out, t0));
            rs.bytes_in += out.bytes_in;
            rs.bytes_out += out.bytes_out;
        } else {
            ++ctx_.stats.unrouted_requests;
        }
        // [logging] access_log = false, or a level above info: no line (its fields cost on
        // every request).
        if (!log::access_log() || !log::enabled(log::Level::info)) return;
        log::info("proxy.request", {{"route", out.route},
                                    {"method", out.method},
                                    {"path", out.path},
                                    {"status", out.status},
                                    {"error", out.error.empty() ? "-" : out.error},
                                    {"bytes_in", out.bytes_in},
                                    {"bytes_out", out.bytes_out},
                                    {"upstream_ms", out.upstream_ms},
                                    {"total_ms", ms_since(t0)},
                                    {"conn_reused", out.reused},
                                    {"tls_resumed", out.resumed},
                                    {"attempts", out.attempts},
                                    {"caller", caller_.address}});
    }

    // The upload stopped because of the app: its body broke the rules (400, e.g. a bad
    // chunk; 413 over the route's max_request_body; the connection closes) or it went away.
    bool app_upload_failed(const SessionUpload& up, const config::Route& route, Outcome& out) {
        if (up.body_limit)
            return fail(payload_too_large("the request body exceeds route " + route.name +
                                          "'s max_request_body of " +
                                          std::to_string(route.max_request_body) + " bytes"),
                        true);
        if (is_http_error(up.client_ec))
            return fail(bad_request("malformed request body: " + up.client_ec.message()), true);
        out.status = 499;
        out.error = "client_gone";
        return false;
    }

    // An exchange's error exit: the error one_request answers after it (one call site
    // instead of one per error keeps the exchange's coroutine frame small); close: the app's
    // connection closes after it even if the request was read completely.
    bool fail(ProxyError e, bool close = false) {
        failure_ = std::move(e);
        failure_closes_ = close;
        return false;
    }

    // One request/response exchange. Returns whether the app's connection stays open.
    net::awaitable<bool> one_request() {
        request_started_ = false;
        HeadRead h;
        if (head_step(h) == HeadStep::wait) {
            // Woken from the idle wait, yet not one byte to read: readiness is only a hint.
            // Asio's reactor hands a readiness event to whatever wait is pending when it gets
            // to it; one it took from epoll while the bytes it announced were still unread
            // (they went with the last request, read without waiting) can end the next idle
            // wait. No request began: back to the idle wait (serve() sees no state kept),
            // instead of waiting for a head here, not idle, with a request state.
            if (rs_->cbuf.size() == 0) {
                ++ctx_.stats.idle_wakeups_empty;
                co_return true;
            }
            co_await read_head_block(h);
        }
        auto& head_err = h.result;
        if (!head_err) co_return false;  // closed or idle timeout
        request_started_ = true;
        member_.busy(true);
        const auto t0 = Clock::now();
        total_deadline_.reset();
        Outcome out;
        if (*head_err) {
            co_await send_error(*head_err, 11, false, out);
            finish(out, t0, nullptr);
            co_return false;
        }

        Parser parser;
        parser.header_limit(static_cast<std::uint32_t>(listener_->max_header_bytes + 4));
        parser.body_limit(
            std::numeric_limits<std::uint64_t>::max());  // per route below (not boost::none:
                                                         // Beast 1.74 then rejects every
                                                         // Content-Length)
        error_code ec;
        client_deadline();
        // The head is in the buffer (read_head_block): parsed without a coroutine of its own.
        if (feed_head(rs_->cbuf, parser, ec) == Feed::need_more)
            co_await read_head(client_, rs_->cbuf, parser, ec);
        if (ec) {
            ProxyError e = ec == http::error::header_limit
                               ? headers_too_large("the request head is too large")
                               : bad_request("malformed request: " + ec.message());
            if (ec == net::beast::error::timeout || ec == http::error::end_of_stream)
                co_return false;
            co_await send_error(e, 11, false, out);
            finish(out, t0, nullptr);
            co_return false;
        }
        const auto& head = parser.get().base();
        out.method = head.method_string();
        out.path = head.target().substr(0, std::min<std::size_t>(head.target().find('?'), 256));
        // The route table this request uses from start to end (a reload may swap it).
        const std::shared_ptr<const RouteSet> routes = ctx_.routes;
        auto prepared_or_error = prepare_request(head, routes->table, caller_, *listener_);
        if (auto* e = std::get_if<ProxyError>(&prepared_or_error)) {
            // Keep the connection only when the next request's start is known for sure: the
            // request is complete and its framing was not what we refused (a 400 may be
            // conflicting or unknown Content-Length / Transfer-Encoding: where this request
            // ends is then unknown, and reading on would smuggle its body as a request).
            bool keep = parser.is_done() && parser.get().keep_alive() &&
                        e->status != http::status::bad_request && framing_is_plain(head) &&
                        !ctx_.drain.draining();
            bool kept = co_await send_error(*e, head.version(), keep, out);
            finish(out, t0, nullptr);
            co_return kept;
        }
        auto& prep = std::get<PreparedRequest>(prepared_or_error);
        const std::size_t ri = prep.route_index;
        const auto& entry = routes->table.routes()[ri];
        RouteState& state = *routes->state[ri];
        const auto& route = entry.route;
        out.route = route.name;
        if (route.timeouts.total.count() > 0) total_deadline_ = t0 + route.timeouts.total;

        bool keep = co_await exchange(parser, prep, *routes, state, out);
        rs_->rp.reset();  // no response fields, no token past the request
        rs_->token.reset();
        rs_->upload.reset();
        if (failure_) {
            keep = !failure_closes_ && parser.is_done() && prep.client_keep_alive &&
                   !ctx_.drain.draining();
            keep = co_await send_error(failure_, head.version(), keep, out);
            failure_ = {};
        }
        finish(out, t0, state.stats.get());
        co_return keep;
    }

    net::awaitable<bool> send_continue_once(const PreparedRequest& prep) {
        if (!prep.expect_continue || continue_sent_) co_return true;
        continue_sent_ = true;
        std::array<net::asio::const_buffer, 1> bufs{buf("HTTP/1.1 100 Continue\r\n\r\n")};
        error_code ec = co_await write_client(bufs);
        co_return !ec;
    }

    // Reads the next piece of the app's body into [data, data + size); sets `n` to its
    // size. The error is the app's (failed, went away, or sent a body it could not frame).
    net::awaitable<error_code> read_body_piece(Parser& parser, char* data, std::size_t size,
                                               std::size_t& n) {
        parser.get().body().data = data;
        parser.get().body().size = size;
        error_code ec;
        client_.expires_after(listener_->body_idle);
        co_await read_body(client_, rs_->cbuf, parser, ec);
        n = size - parser.get().body().size;
        co_return ec;
    }

    // Reads the rest of the app's body (Content-Length, at most kReplayableBodyMax) into
    // `body`. false: the app failed or went away.
    net::awaitable<bool> read_small_body(Parser& parser, std::uint64_t length, std::string& body,
                                         Outcome& out) {
        body.resize(length);
        std::size_t got = 0;
        while (!parser.is_done() && got < body.size()) {
            std::size_t n = 0;
            error_code ec =
                co_await read_body_piece(parser, body.data() + got, body.size() - got, n);
            if (ec) co_return false;
            got += n;
            out.bytes_in += n;
        }
        body.resize(got);
        co_return parser.is_done();
    }

    // Forwards the request and the answer. Returns whether the app's connection stays open;
    // false with failure_ set: one_request answers that error.
    net::awaitable<bool> exchange(Parser& parser, PreparedRequest& prep, const RouteSet& routes,
                                  RouteState& state, Outcome& out) {
        const auto& entry = routes.table.routes()[prep.route_index];
        const auto& route = entry.route;
        continue_sent_ = false;

        if (route.max_request_body > 0 && prep.content_length &&
            *prep.content_length > route.max_request_body)
            co_return fail(
                payload_too_large("the request body is " + std::to_string(*prep.content_length) +
                                  " bytes; route " + route.name + " allows " +
                                  std::to_string(route.max_request_body) + " (max_request_body)"));

        // The identity this request uses from start to end.
        identity::IdentityPtr id = ctx_.identities.current();
        if (!id)
            if (auto note = ctx_.identities.burn_note(); !note.empty())
                co_return fail(identity_compromised(note));
        if (!id || !id->valid_at(identity::Identity::Clock::now()))
            co_return fail(no_identity(identity_problem(id)));

        // The token. false: failure_ says why there is none.
        auto& token = rs_->token;
        token.reset();
        auto fetch_token = [&]() -> net::awaitable<bool> {
            if (route.token_profile.empty()) co_return true;
            if (ctx_.tokens == nullptr)
                co_return fail(token_unavailable("route " + route.name + " needs token profile " +
                                                 route.token_profile +
                                                 " but no token source runs"));
            // A rotation while the token was on its way makes the cache refuse the old
            // certificate. Nothing was sent upstream yet: the request moves to the new
            // identity (a few times at most, should rotations keep coming).
            for (int moved = 0;; ++moved) {
                auto r = co_await ctx_.tokens->get(route.token_profile, id);
                if (auto* te = std::get_if<token::TokenError>(&r)) {
                    if (!ctx_.identities.usable(*id)) co_return fail(compromised_now());
                    auto newer = ctx_.identities.current();
                    if (te->code == token::errc::identity_rotated && moved < 3 && newer &&
                        newer != id && newer->valid_at(identity::Identity::Clock::now())) {
                        id = std::move(newer);
                        continue;
                    }
                    // The message names the profile already (token::TokenCache).
                    co_return fail(token_unavailable(te->message));
                }
                token = std::get<token::Token>(std::move(r));
                co_return true;
            }
        };
        // (No token profile: no call, no coroutine frame.)
        if (!route.token_profile.empty() && !co_await fetch_token()) co_return false;

        // The body: small ones are read first so the request can be replayed.
        const bool replayable =
            !prep.has_body() || (prep.content_length && *prep.content_length <= kReplayableBodyMax);
        std::string small_body;
        if (prep.has_body() && replayable) {
            if (!co_await send_continue_once(prep)) co_return false;
            if (!co_await read_small_body(parser, *prep.content_length, small_body, out))
                co_return false;
        }

        const bool is_head = parser.get().method() == http::verb::head;

        auto& pool = *state.pool;
        bool token_retried = false;
        bool stale_retried = false;
        for (;;) {
            ++out.attempts;
            const auto t_up = Clock::now();
            // Burnt meanwhile (declared compromised, or revoked): nothing more goes out with
            // it — neither a new handshake nor a request on a pooled connection.
            if (!ctx_.identities.usable(*id)) co_return fail(compromised_now());
            // A pooled connection without a coroutine step; else a new one (or a wait).
            auto lease = pool.take_idle(id, failure_);
            if (!lease.conn && !failure_) lease = co_await pool.acquire(id, failure_);
            if (!lease.conn) co_return false;
            if (!ctx_.identities.usable(*id)) {
                pool.release(std::move(lease.conn), false);
                co_return fail(compromised_now());
            }
            // What cut() closes; cleared before `lease` goes (declared after it).
            lease_conn_ = &lease.conn;
            struct LeaseSeen {
                std::unique_ptr<UpstreamConnection>*& p;
                ~LeaseSeen() { p = nullptr; }
            } lease_seen{lease_conn_};
            auto& conn = *lease.conn;
            out.reused = lease.reused;
            out.resumed = conn.resumed();
            conn.count_request();

            // Request head (+ body): the prepared fields, then framing (the app's framing
            // fields were dropped) and the token.
            UpstreamExtras extras;
            extras.chunked = prep.chunked;
            if (!prep.chunked && prep.content_length)
                extras.content_length = decimal(*prep.content_length);
            if (token) extras.bearer_token = token->access_token;  // token68 (token_response.cpp)
            rs_->wire.clear();
            append_upstream_head(rs_->wire, parser.get().base(), prep, routes.table, caller_,
                                 extras);
            error_code ec;
            bool client_failed = false;
            auto& upload = rs_->upload;
            upload.reset();
            upstream_deadline(conn, route.timeouts.response_header);
            if (replayable) {
                std::array<net::asio::const_buffer, 2> bufs{buf(rs_->wire), buf(small_body)};
                // Most often one write_some takes all: no write_all coroutine around it.
                WriteQueue q(bufs);
                q.consume(co_await conn.stream().write_some(q.rest(), ec));
                if (!ec && !q.empty()) co_await conn.stream().write_all(q.rest(), ec);
            } else {
                // Streamed body: upload in a second coroutine while this one reads the
                // response, so a partner that answers (or echoes) early cannot deadlock us.
                std::array<net::asio::const_buffer, 1> bufs{buf(rs_->wire)};
                co_await conn.stream().write_all(bufs, ec);
                if (!ec && !co_await send_continue_once(prep)) client_failed = true;
                if (!ec && !client_failed) {
                    upload.emplace(client_.socket().get_executor());
                    net::asio::co_spawn(
                        client_.socket().get_executor(),
                        upload_body(parser, prep.chunked, conn, route, out, *upload),
                        net::asio::detached);
                }
            }
            if (client_failed) {
                pool.release(std::move(lease.conn), false);
                out.status = 499;
                out.error = "client_gone";
                co_return false;
            }
            const bool can_retry = lease.reused && prep.idempotent && replayable && !stale_retried;

            // Response head (skipping 1xx interim responses).
            auto& rp = rs_->rp;  // a member: the parser would make the frame large
            rp.reset();
            rs_->body_done = false;
            if (!ec) {
                for (;;) {
                    rp.emplace();
                    rp->header_limit(64 * 1024);
                    rp->body_limit(std::numeric_limits<std::uint64_t>::max());
                    if (is_head) rp->skip(true);
                    upstream_deadline(conn, route.timeouts.response_header);
                    co_await read_head(conn.stream(), conn.buffer(), *rp, ec);
                    if (ec) break;
                    unsigned s = rp->get().result_int();
                    if (s / 100 != 1 || s == 101) break;
                }
            }
            if (upload && (ec || upload->body_limit || upload->client_failed)) {
                co_await finish_upload(*upload, conn, true);
                // Our own abort (the partner failed: ec) cancels the app read too; that is
                // the partner's failure to report, not the app's.
                const bool cut_by_us =
                    ec && upload->client_ec == net::asio::error::operation_aborted;
                if ((upload->client_failed && !cut_by_us) || upload->body_limit) {
                    pool.release(std::move(lease.conn), false);
                    co_return app_upload_failed(*upload, route, out);
                }
            }
            if (ec) {
                bool got_some = rp && rp->got_some();
                pool.release(std::move(lease.conn), false);
                if (int alert = received_alert(ec); alert >= 0)  // e.g. our certificate refused
                    co_return fail(upstream_tls_alert(entry.target.authority, alert_name(alert)));
                if (can_retry && !got_some && ec != net::beast::error::timeout) {
                    stale_retried = true;
                    ++state.stats->retries;
                    continue;
                }
                if (ec == net::beast::error::timeout)
                    co_return fail(upstream_timeout("no response from " + entry.target.authority +
                                                    " in time (route " + route.name +
                                                    " timeouts)"));
                if (got_some)
                    co_return fail(upstream_bad_response(
                        "bad response from " + entry.target.authority + ": " + ec.message()));
                co_return fail(upstream_reset(entry.target.authority +
                                              " closed the connection before answering (" +
                                              ec.message() + ")"));
            }
            out.upstream_ms = ms_since(t_up);
            auto& rhead = rp->get().base();
            const unsigned status = rhead.result_int();
            if (status < 100 || status == 101) {
                // Not forwarded: "HTTP/1.1 002 …" has three digits but is no status, and the
                // proxy does not switch protocols. An upload still running is cut off first.
                if (upload) co_await finish_upload(*upload, conn, true);
                pool.release(std::move(lease.conn), false);
                co_return fail(upstream_bad_response(
                    entry.target.authority + " answered " +
                    (status == 101 ? std::string("101 Switching Protocols")
                                   : "with status " + std::to_string(status)) +
                    ", which the proxy does not forward"));
            }

            // 401 invalid_token: drop the token and retry once, if the body can be replayed.
            if (token && replayable && !token_retried && is_invalid_token_challenge(rhead)) {
                token_retried = true;
                pool.release(std::move(lease.conn), false);
                ctx_.tokens->invalidate(route.token_profile, id->x5t_s256());
                log::info("proxy.token_rejected", {{"route", route.name},
                                                   {"profile", route.token_profile},
                                                   {"token", log::redact(token->access_token)}});
                if (!co_await fetch_token()) co_return false;
                continue;
            }

            // Response to the app.
            const bool no_body = is_head || status == 204 || status == 304 || status / 100 == 1;
            // Draining: the response says Connection: close.
            bool client_keep = prep.client_keep_alive && parser.is_done() && !ctx_.drain.draining();
            DownstreamFraming framing;
            framing.version = parser.get().version() == 10 ? 10 : 11;
            const auto body_length = rp->content_length();
            if (!no_body) {
                if (body_length)
                    framing.content_length = decimal(*body_length);
                else if (framing.version == 11)
                    framing.chunked = true;
                else
                    client_keep = false;  // HTTP/1.0 app: the end of the body is the close
            } else if (is_head) {
                if (auto it = rhead.find(http::field::content_length); it != rhead.end())
                    framing.content_length = it->value();
            }
            framing.keep_alive = client_keep;
            const bool chunked = framing.chunked;
            rs_->wire.clear();
            append_downstream_head(rs_->wire, rhead, framing);
            out.status = status;
            out.partner_answered = true;
            out.invalid_token = status == 401 && is_invalid_token_challenge(rhead);
            bool head_sent = false;
            const std::size_t body_cap =
                body_length ? static_cast<std::size_t>(*body_length) : kChunk;
            error_code cec;
            WriteQueue rest;
            if (relay_whole_now(conn, no_body, body_length, out, head_sent, rest, cec, ec)) {
                if (!rest.empty()) cec = co_await write_client(rest.rest());
            } else {
                cec = co_await relay_response(conn, route.timeouts.idle, chunked, body_cap, out,
                                              head_sent, ec);
            }
            bool upload_clean = true;
            if (upload) {
                // The response is complete (or failed): an upload still running is cut off.
                bool cut = !upload->done;
                co_await finish_upload(*upload, conn, cut);
                upload_clean = !cut && !upload->client_failed && !upload->body_limit && !upload->ec;
                if (!upload_clean) client_keep = false;
            }
            const bool upstream_clean =
                upload_clean && !ec && (rp->is_done() || rs_->body_done) && rp->keep_alive();
            pool.release(std::move(lease.conn), upstream_clean);
            if (ec && !head_sent && upload && !upload->ec &&
                (upload->body_limit ||
                 (upload->client_failed &&
                  upload->client_ec != net::asio::error::operation_aborted))) {
                // The partner answered early (an echo sends its head before the body), then
                // the uploader cut the connection because of the app's body: the app's error
                // is the one to report, as when it is found before the partner's head.
                co_return app_upload_failed(*upload, route, out);
            }
            if (ec) {
                log::warn("proxy.upstream_body_failed",
                          {{"route", route.name}, {"error", ec.message()}});
                // Nothing of the response reached the app yet (its head goes out with the
                // first body bytes): it gets a proper 502 instead of an empty reply.
                if (!head_sent)
                    co_return fail(upstream_reset(entry.target.authority +
                                                  " broke off its response before the body (" +
                                                  ec.message() + ")"));
                out.error = "upstream_reset";
                co_return false;  // the app sees a truncated body and a closed connection
            }
            if (cec) {
                out.error = "client_gone";
                co_return false;
            }
            co_return client_keep;
        }
    }

    // The whole response is here — no body, or a Content-Length body of at most kSmallBody
    // that came with the head into the connection's read buffer: relayed without
    // relay_response's coroutine (the usual small answer). false: it is not, nothing was
    // done. true: the head in rs_->wire and the body were written as far as the app's socket
    // took them at once; `rest` holds the remainder (for write_client), `cec` the app's error,
    // `ec` the partner's (a body the parser refused; nothing was written then).
    bool relay_whole_now(UpstreamConnection& conn, bool no_body,
                         const boost::optional<std::uint64_t>& body_length, Outcome& out,
                         bool& head_sent, WriteQueue& rest, error_code& cec, error_code& ec) {
        auto& rp = *rs_->rp;
        const char* data = nullptr;
        std::size_t n = 0;
        if (!no_body) {
            if (!body_length || *body_length > kSmallBody || rp.chunked() ||
                conn.buffer().size() < *body_length)
                return false;
            char* body = rs_->small_body_buffer();
            rp.get().body().data = body;
            rp.get().body().size = kSmallBody;
            // The window holds the whole body and the buffer has it: the parser completes.
            if (feed_body(conn.buffer(), rp, ec) != Feed::done) {
                if (!ec) ec = http::error::partial_message;
                return true;
            }
            data = body;
            n = kSmallBody - rp.get().body().size;
            out.bytes_out += n;
            rs_->body_done = true;
        }
        std::array<net::asio::const_buffer, 2> bufs{buf(rs_->wire), {data, n}};
        rest = WriteQueue(bufs);
        head_sent = true;
        if (write_client_now(rest, cec)) rest = WriteQueue();
        return true;
    }

    // Writes the response head in rs_->wire and the body that follows it (read from rp_) to the
    // app, in pieces as they arrive. Returns the app's error; `ec` gets the partner's,
    // `head_sent` whether the head went out (it goes with the first body bytes).
    net::awaitable<error_code> relay_response(UpstreamConnection& conn,
                                              std::chrono::milliseconds idle, bool chunked,
                                              std::size_t body_length_or_chunk, Outcome& out,
                                              bool& head_sent, error_code& ec) {
        auto& rp = *rs_->rp;
        // One buffer per response, as large as the body (up to kChunk).
        const std::size_t cap = std::clamp<std::size_t>(body_length_or_chunk, 1, kChunk);
        BodyBuffer body(ctx_.bodies, cap, cap <= kSmallBody ? rs_->small_body_buffer() : nullptr);
        // Once the connection's read buffer is empty, the rest of a Content-Length body goes
        // from the TLS stream straight into the body buffer: through Beast's parser it would
        // be copied once more (from the read buffer into the body window). The parser cannot
        // be told that body bytes went past it, so from then on the length left is counted
        // here (direct_left) and rs_->body_done says when the body is complete.
        std::optional<std::uint64_t> direct_left;
        auto complete = [&] { return direct_left ? *direct_left == 0 : rp.is_done(); };
        for (;;) {
            std::size_t n = 0;
            if (!complete()) {
                upstream_deadline(conn, idle);
                if (!direct_left && conn.buffer().size() == 0 && !rp.chunked())
                    if (auto left = rp.content_length_remaining()) direct_left = *left;
                if (direct_left) {
                    n = co_await read_direct(
                        conn, body.get(),
                        static_cast<std::size_t>(std::min<std::uint64_t>(cap, *direct_left)), ec);
                    if (ec) co_return error_code{};
                    *direct_left -= n;
                } else {
                    rp.get().body().data = body.get();
                    rp.get().body().size = cap;
                    // What the read buffer holds already (a small body often came with the
                    // head) without read_body's coroutine; read_body only to wait for more.
                    if (feed_body(conn.buffer(), rp, ec) == Feed::need_more)
                        co_await read_body(conn.stream(), conn.buffer(), rp, ec, cap);
                    if (ec) co_return error_code{};
                    n = cap - rp.get().body().size;
                }
                out.bytes_out += n;
            }
            const bool last = complete();
            rs_->body_done = last;
            auto piece = body_piece(rs_->size_line, chunked, body.get(), n, last);
            std::array<net::asio::const_buffer, 5> bufs{
                buf(head_sent ? std::string_view() : std::string_view(rs_->wire)), piece[0],
                piece[1], piece[2], piece[3]};
            WriteQueue q(bufs);
            error_code cec;
            if (!write_client_now(q, cec)) cec = co_await write_client(q.rest());
            head_sent = true;
            if (cec || last) co_return cec;
        }
    }

    // Reads body bytes from the partner's stream into [data, data + want): waits for some,
    // then takes what else is ready without waiting (a fast body moves in large pieces). EOF
    // here cuts the body short (partial_message).
    net::awaitable<std::size_t> read_direct(UpstreamConnection& conn, char* data, std::size_t want,
                                            error_code& ec) {
        std::size_t n = co_await conn.stream().read_some(net::asio::buffer(data, want), ec);
        if (ec == net::asio::error::eof) ec = http::error::partial_message;
        if (ec) co_return 0;
        while (n < want) {
            // Errors other than would_block show on the next read, after these bytes went on.
            error_code more;
            std::size_t m = conn.stream().try_read(net::asio::buffer(data + n, want - n), more);
            if (m == 0) break;
            n += m;
        }
        co_return n;
    }

    net::awaitable<void> upload_body(Parser& parser, bool chunked, UpstreamConnection& conn,
                                     const config::Route& route, Outcome& out, SessionUpload& st) {
        BodyBuffer body(ctx_.bodies, kChunk, nullptr);
        std::string size_line;  // the uploader's own: the response loop runs alongside
        error_code ec;
        for (;;) {
            std::size_t n = 0;
            if (!parser.is_done()) {
                error_code cec = co_await read_body_piece(parser, body.get(), kChunk, n);
                if (cec) {
                    st.client_failed = true;
                    st.client_ec = cec;
                    conn.close();  // the partner must not take a truncated body as complete
                    break;
                }
                out.bytes_in += n;
                if (route.max_request_body > 0 && out.bytes_in > route.max_request_body) {
                    st.body_limit = true;
                    conn.close();  // the partner must not take a truncated body as complete
                    break;
                }
            }
            const bool last = parser.is_done();
            auto bufs = body_piece(size_line, chunked, body.get(), n, last);
            upstream_deadline(conn, route.timeouts.idle);
            co_await conn.stream().write_all(bufs, ec);
            if (ec || last) break;
        }
        st.ec = ec;
        st.done = true;
        st.signal.cancel();
    }

    // Waits for the uploader; abort: cut it off first (close upstream, cancel the app read).
    net::awaitable<void> finish_upload(SessionUpload& st, UpstreamConnection& conn, bool abort) {
        if (st.done) co_return;
        if (abort) {
            conn.close();
            client_.cancel();
        }
        error_code ec;
        while (!st.done) co_await st.signal.async_wait(net::use_ec(ec));
    }

    PlainStream& client_;
    bool request_started_ = false;  // the last one_request() read a request head
    ProxyContext& ctx_;
    // The [listener] settings this connection started with (a reload applies new ones to
    // new connections).
    const std::shared_ptr<const config::Listener> listener_;
    Caller caller_;
    std::array<char, 24> number_{};  // decimal()'s text
    // The request's state (read buffer, heads, response parser, token, uploader): held
    // while a request is in flight (or its first bytes are read), else in the pool.
    RequestStatePtr rs_;
    std::optional<Clock::time_point> total_deadline_;
    std::size_t idle_held_ = 0;  // held_bytes() counted into the stats while idle
    ProxyError failure_;         // set by fail()
    bool failure_closes_ = false;
    bool continue_sent_ = false;
    // The partner connection of the exchange in progress (the lease's, null once given back).
    std::unique_ptr<UpstreamConnection>* lease_conn_ = nullptr;
    Drain::Member member_;  // last: joins the drain once everything cut() uses exists
};

}  // namespace

class AppConnection;

// A serving coroutine waiting for its next connection (ParkedServers, session.hpp): woken by
// cancelling `wake` after `conn` and `wait_ec` were set.
struct ParkedServer {
    ParkedServer(std::shared_ptr<ParkedServers> set, const net::asio::any_io_executor& ex)
        : servers(std::move(set)), wake(ex, net::asio::steady_timer::time_point::max()) {}
    ~ParkedServer();
    ParkedServer(const ParkedServer&) = delete;
    ParkedServer& operator=(const ParkedServer&) = delete;
    std::shared_ptr<ParkedServers> servers;
    net::asio::steady_timer wake;
    std::unique_ptr<AppConnection> conn;
    error_code wait_ec;
};

// One app connection, on the heap for its whole life: while idle it is owned by the pending
// readability wait's handler, no coroutine frame exists; when the app sends, a coroutine
// serves the requests and hands it back to a new wait.
class AppConnection {
  public:
    AppConnection(ClientSocket socket, ProxyContext& ctx, Caller caller,
                  net::ConnectionCaps::Slot slot)
        : ctx_(ctx),
          stream_(std::move(socket)),
          session_(stream_, ctx, std::move(caller)),
          slot_(std::move(slot)) {}

    // Waits until the app sends (or closes), then serves.
    static void wait(std::unique_ptr<AppConnection> self) {
        AppConnection& c = *self;
        c.session_.enter_idle();
        auto blocks = c.ctx_.wait_ops;
        c.stream_.async_wait_readable(Wake{std::move(self), std::move(blocks)});
    }

  private:
    // The idle wait's completion: it owns the connection while it waits; its operation's
    // memory comes from the worker's WaitOpBlocks.
    struct Wake {
        std::unique_ptr<AppConnection> self;
        std::shared_ptr<WaitOpBlocks> blocks;  // outlives the operation's memory
        using allocator_type = WaitOpAllocator<void>;
        allocator_type get_allocator() const noexcept { return allocator_type(blocks.get()); }
        void operator()(const error_code& ec) {
            self->session_.leave_idle();
            // A parked serving coroutine takes it (the one parked last), else a new one.
            auto& parked = self->ctx_.servers->parked;
            if (!parked.empty()) {
                ParkedServer* p = parked.back();
                parked.pop_back();
                p->conn = std::move(self);
                p->wait_ec = ec;
                p->wake.cancel();
                return;
            }
            auto ex = self->stream_.socket().get_executor();
            auto servers = self->ctx_.servers;
            net::asio::co_spawn(ex, server(std::move(servers), std::move(self), ec),
                                net::asio::detached);
        }
    };

    // Serves `conn` until it is idle or ends, then parks to serve the next connection that
    // wakes up (unless kKeep others are parked already).
    static net::awaitable<void> server(std::shared_ptr<ParkedServers> servers,
                                       std::unique_ptr<AppConnection> conn, error_code wait_ec) {
        ParkedServer me(servers, conn->stream_.socket().get_executor());
        for (;;) {
            // Serves it here (no coroutine of its own): back to an idle wait, or it ends.
            ProxyContext& ctx = conn->ctx_;
            bool idle = false;
            try {
                idle = co_await conn->session_.serve(wait_ec);
            } catch (const std::exception& e) {
                log::error("proxy.session_failed", {{"error", e.what()}});
            }
            if (idle) {
                wait(std::move(conn));
            } else {
                conn.reset();
                --ctx.stats.connections_open;
                if (ctx.worker_open) --*ctx.worker_open;
            }
            if (servers->parked.size() >= ParkedServers::kKeep) co_return;
            servers->parked.push_back(&me);
            error_code ec;
            co_await me.wake.async_wait(net::use_ec(ec));
            if (!me.conn) co_return;  // not woken for a connection (cannot happen)
            conn = std::move(me.conn);
            wait_ec = me.wait_ec;
        }
    }

    ProxyContext& ctx_;
    PlainStream stream_;
    Session session_;
    net::ConnectionCaps::Slot slot_;  // the admission, held until the connection ends
};

ParkedServer::~ParkedServer() {
    // A frame destroyed while parked (the io_context goes) leaves the set.
    auto& v = servers->parked;
    v.erase(std::remove(v.begin(), v.end(), this), v.end());
}

void start_session(ClientSocket socket, ProxyContext& ctx, Caller caller,
                   net::ConnectionCaps::Slot slot) {
    ++ctx.stats.connections_accepted;
    ++ctx.stats.connections_open;
    AppConnection::wait(std::make_unique<AppConnection>(std::move(socket), ctx, std::move(caller),
                                                        std::move(slot)));
}

}  // namespace mtls::proxy
