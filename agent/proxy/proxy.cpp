#include "agent/proxy/proxy.hpp"

#include "agent/net/accept_guard.hpp"
#include "agent/net/conn_caps.hpp"
#include "agent/proxy/errors.hpp"
#include "agent/proxy/listener.hpp"
#include "agent/proxy/session.hpp"
#include "agent/proxy/upstream_pool.hpp"
#include "common/log.hpp"
#include "common/rate_limited_log.hpp"

#include <sys/socket.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include <pthread.h>

#include <algorithm>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>

namespace mtls::proxy {
namespace {

// A connection over a cap, or one shed at EMFILE: 503 too_many_connections, sent without
// blocking before the connection closes.
std::string refusal(const std::string& message) {
    ProxyError e{net::http::status::service_unavailable, "too_many_connections", message};
    auto res = error_response(e, 11, false);
    res.set(net::http::field::retry_after, "1");
    std::ostringstream out;
    out << res;
    return out.str();
}

const char* reason_name(net::ConnectionCaps::Refusal r) {
    return r == net::ConnectionCaps::Refusal::per_caller ? "max_connections_per_caller"
                                                         : "max_connections";
}

}  // namespace

// One event loop of the proxy (proxy.hpp, Threads): its sessions, pools, body buffers and
// drain (in ctx), used on its thread only.
struct ProxyWorker {
    std::size_t index = 0;
    std::unique_ptr<ProxyContext> ctx;
    // Null: the proxy's io_context (one worker). Shared with the accept loops: an accept in
    // progress holds a socket of this loop, and may be destroyed with the caller's io_context
    // after the proxy (the loop must outlive it).
    std::shared_ptr<net::asio::io_context> own;
    net::asio::any_io_executor ex;
    // The route sets ctx->routes holds, as the accepting thread knows them (it prepares the
    // next ones from these); given back to the worker's thread to be dropped there.
    std::shared_ptr<const RouteSet> routes;
    std::unique_ptr<net::asio::steady_timer> sweeper;
    // Pools a reload retired while requests were still on them (they hold the old table):
    // a compromise must cut those connections too. Used on the worker's thread only.
    std::vector<std::weak_ptr<RouteState>> retired;
    std::optional<net::asio::executor_work_guard<net::asio::io_context::executor_type>> guard;
    std::thread thread;
};

// What the accept loops share: the caps, the refusal answers and the rate-limited log lines
// (a flood of refused connections or failing accepts writes one line per interval).
struct AcceptState {
    AcceptState(net::ConnectionCaps::Limits limits, std::uint64_t nofile)
        : caps(limits),
          fd_reply(refusal("the agent has run out of file descriptors (RLIMIT_NOFILE " +
                           std::to_string(nofile) +
                           "); try again later, or raise LimitNOFILE= / lower "
                           "listener.max_connections")) {}
    net::ConnectionCaps caps;
    const std::string fd_reply;
    log::RateLimited accept_failed{log::Level::warning, "proxy.accept_failed",
                                   std::chrono::seconds(5)};
    log::RateLimited refused{log::Level::warning, "proxy.connection_refused",
                             std::chrono::seconds(5)};
    std::size_t next_worker = 0;  // where the search for the least busy worker starts
};

namespace {

// The worker for the next connection: the one with the fewest open connections, the search
// starting after the last one chosen (round-robin among equals).
ProxyWorker& least_busy_worker(const std::vector<std::unique_ptr<ProxyWorker>>& workers,
                               const ProxyStats& stats, AcceptState& st) {
    const std::size_t n = workers.size();
    std::size_t best = st.next_worker % n;
    for (std::size_t k = 1; k < n; ++k) {
        const std::size_t i = (st.next_worker + k) % n;
        if (stats.worker_open[i].load(std::memory_order_relaxed) <
            stats.worker_open[best].load(std::memory_order_relaxed))
            best = i;
    }
    st.next_worker = best + 1;
    return *workers[best];
}

// Accepts app connections (TCP or Unix socket) and serves each in its own session coroutine,
// over a generic stream socket: one session type for both. `caller_of` says who connected
// (address, or uid/gids for the per-route checks), `key_of` which per-caller cap counts it.
// Over a cap the connection is answered 503 at once and closed; out of descriptors, the
// waiting connections are refused that way and accepting pauses (10 ms doubling to 1 s).
template <class Acceptor, class CallerOf, class KeyOf>
net::awaitable<void> accept_loop(
    std::shared_ptr<Acceptor> acceptor, const std::vector<std::unique_ptr<ProxyWorker>>& workers,
    [[maybe_unused]] std::vector<std::shared_ptr<net::asio::io_context>> keep, ProxyStats& stats,
    AcceptState& st, CallerOf caller_of, KeyOf key_of) {
    Acceptor& acc = *acceptor;  // held until the loop ends (a reload may close it)
    net::AcceptBackoff backoff;
    net::asio::steady_timer pause(acc.get_executor());
    bool failing = false;
    for (;;) {
        net::error_code ec;
        // Accepted straight onto the worker's event loop: the session never changes thread.
        ProxyWorker& w = least_busy_worker(workers, stats, st);
        auto sock = co_await acc.async_accept(w.ex, net::use_ec(ec));
        if (ec == net::asio::error::operation_aborted || !acc.is_open()) co_return;
        if (ec) {
            if (!net::out_of_descriptors(ec)) {
                st.accept_failed.write({{"error", ec.message()}});
                continue;
            }
            failing = true;
            stats.refused_no_fds += net::shed_pending(acc.native_handle(), st.fd_reply);
            const auto wait = backoff.next();
            st.accept_failed.write({{"error", ec.message()},
                                    {"action", "refusing connections, pausing accepts"},
                                    {"pause_ms", wait.count()},
                                    {"open", st.caps.open()}});
            pause.expires_after(wait);
            co_await pause.async_wait(net::use_ec(ec));
            if (!acc.is_open()) co_return;
            continue;
        }
        if (failing) {
            failing = false;
            backoff.reset();
            st.accept_failed.flush({{"error", "out of file descriptors"}});
            log::info("proxy.accept_resumed", {{"open", st.caps.open()}});
        }
        const std::string key = key_of(sock);
        auto admission = st.caps.admit(key, false);
        if (!admission.slot) {
            const bool per_caller = admission.refusal == net::ConnectionCaps::Refusal::per_caller;
            ++(per_caller ? stats.refused_per_caller : stats.refused_total);
            const auto limit = per_caller ? st.caps.limits().per_caller : st.caps.limits().total;
            const std::string key_name = std::string("listener.") + reason_name(admission.refusal);
            st.refused.write({{"reason", reason_name(admission.refusal)},
                              {"caller", key},
                              {"open", admission.open},
                              {"limit", limit}});
            net::refuse(
                sock.native_handle(),
                refusal(std::string(per_caller ? "this caller" : "the proxy") + " has " +
                        std::to_string(admission.open) + " connections open, the most allowed (" +
                        key_name + " = " + std::to_string(limit) +
                        "); close idle connections or raise " + key_name));
            continue;  // sock closes
        }
        Caller caller = caller_of(sock);
        // The session starts and runs on its worker (that worker's pools, drain, request
        // states); with one worker that is this thread and dispatch runs it inline. The slot
        // is given back when the session ends (the session holds it); so is the worker's
        // count of open connections (ProxyContext::worker_open).
        ++stats.worker_accepted[w.index];
        ++stats.worker_open[w.index];
        net::asio::dispatch(
            w.ex, [sock = ClientSocket(std::move(sock)), ctx = w.ctx.get(),
                   caller = std::move(caller), slot = std::move(admission.slot)]() mutable {
                start_session(std::move(sock), *ctx, std::move(caller), std::move(slot));
            });
    }
}

std::string tcp_key(const net::tcp::socket& s) {
    net::error_code ec;
    auto ep = s.remote_endpoint(ec);
    return ec ? std::string("tcp:unknown") : ep.address().to_string();
}

std::string unix_key(const net::unix_socket::socket& s) {
    struct ucred cred {};
    socklen_t len = sizeof cred;
    int fd = const_cast<net::unix_socket::socket&>(s).native_handle();
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return "uid:unknown";
    return "uid:" + std::to_string(cred.uid);
}

Caller tcp_caller_no_delay(net::tcp::socket& s) {
    net::error_code ec;
    s.set_option(net::tcp::no_delay(true), ec);
    return tcp_caller(s);
}

net::awaitable<void> sweep_pools(net::asio::steady_timer& timer, ProxyContext& ctx) {
    for (;;) {
        timer.expires_after(std::chrono::seconds(1));
        net::error_code ec;
        co_await timer.async_wait(net::use_ec(ec));
        if (ec) co_return;
        for (auto& st : ctx.routes->state) st->pool->sweep();
    }
}

// What decides whether a reload keeps a route's pool: its whole configuration as rendered,
// and the bytes of its CA bundle (a reload re-reads a changed bundle, as nginx does).
std::string route_fingerprint(const config::Route& r) {
    config::Config only;
    only.routes.push_back(r);
    std::string fp = config::render(only);
    if (!r.ca_file.empty()) {
        std::ifstream in(r.ca_file, std::ios::binary);
        std::ostringstream bytes;
        bytes << in.rdbuf();
        fp += in ? "\n#ca:" + bytes.str() : "\n#ca unreadable";
    }
    return fp;
}

}  // namespace

PreparedRoutes::PreparedRoutes() = default;
PreparedRoutes::~PreparedRoutes() = default;
PreparedRoutes::PreparedRoutes(PreparedRoutes&&) noexcept = default;

Proxy::Proxy(net::asio::io_context& io, const config::Listener& listener,
             const std::vector<config::Route>& routes, identity::IdentityStore& identities,
             token::TokenSource* tokens)
    : io_(io), listener_(std::make_shared<const config::Listener>(listener)) {
    const std::size_t n = std::clamp<std::size_t>(listener.workers, 1, ProxyStats::kMaxWorkers);
    stats_.workers = n;
    for (std::size_t i = 0; i < n; ++i) {
        auto w = std::make_unique<ProxyWorker>();
        w->index = i;
        if (n > 1) w->own = std::make_shared<net::asio::io_context>(1);
        w->ex = w->own ? w->own->get_executor() : io_.get_executor();
        w->ctx = std::unique_ptr<ProxyContext>(new ProxyContext{
            listener_, nullptr, identities, tokens, stats_, {}, std::make_shared<BodyBuffers>()});
        w->routes = std::make_shared<const RouteSet>(RouteSet{RouteTable({}), {}});
        w->ctx->routes = w->routes;
        w->ctx->worker_open = &stats_.worker_open[i];
        workers_.push_back(std::move(w));
    }
    install_routes(prepare_routes(routes));
}

template <class F>
void Proxy::on_each_worker(F f) {
    if (!threads_running_) {
        for (auto& w : workers_) f(*w);
        return;
    }
    std::mutex mu;
    std::condition_variable done;
    std::size_t left = workers_.size();
    for (auto& w : workers_)
        net::asio::post(w->ex, [&, wp = w.get()] {
            f(*wp);
            std::lock_guard lk(mu);
            if (--left == 0) done.notify_one();
        });
    std::unique_lock lk(mu);
    done.wait(lk, [&] { return left == 0; });
}

std::size_t Proxy::workers() const {
    return workers_.size();
}

std::vector<std::shared_ptr<net::asio::io_context>> Proxy::worker_loops() const {
    std::vector<std::shared_ptr<net::asio::io_context>> out;
    for (const auto& w : workers_)
        if (w->own) out.push_back(w->own);
    return out;
}

PreparedRoutes Proxy::prepare_routes(const std::vector<config::Route>& routes) const {
    // One set per worker, each with its own pools; the counters of a route are one object
    // shared by the workers' pools.
    PreparedRoutes out;
    for (std::size_t i = 0; i < workers_.size(); ++i)
        out.sets_.push_back(std::make_shared<RouteSet>(RouteSet{RouteTable(routes), {}}));
    const RouteSet& now = *workers_.front()->routes;
    auto running = [&](const std::string& name) -> std::optional<std::size_t> {
        for (std::size_t i = 0; i < now.table.routes().size(); ++i)
            if (now.table.routes()[i].route.name == name) return i;
        return std::nullopt;
    };
    const auto& entries = out.sets_.front()->table.routes();
    for (std::size_t k = 0; k < entries.size(); ++k) {
        const auto& name = entries[k].route.name;
        auto fp = route_fingerprint(entries[k].route);
        auto old = running(name);
        if (old && now.state[*old]->fingerprint == fp) {
            for (std::size_t i = 0; i < workers_.size(); ++i)
                out.sets_[i]->state.push_back(workers_[i]->routes->state[*old]);
            out.changes_.kept.push_back(name);
            continue;
        }
        auto stats = old ? now.state[*old]->stats : std::make_shared<RouteStats>(name);
        // The TLS context (session cache) and name cache of the route, for all its pools.
        auto shared = std::make_shared<RouteUpstream>(entries[k]);
        for (std::size_t i = 0; i < workers_.size(); ++i) {
            auto st = std::make_shared<RouteState>();
            st->stats = stats;
            st->pool = std::make_unique<UpstreamPool>(
                workers_[i]->ex, out.sets_[i]->table.routes()[k], stats, shared);
            st->fingerprint = fp;
            out.sets_[i]->state.push_back(std::move(st));
        }
        (old ? out.changes_.changed : out.changes_.added).push_back(name);
    }
    for (const auto& e : now.table.routes()) {
        const auto& name = e.route.name;
        auto& next = entries;
        if (std::none_of(next.begin(), next.end(),
                         [&](const RouteTable::Entry& n) { return n.route.name == name; }))
            out.changes_.removed.push_back(name);
    }
    return out;
}

void Proxy::commit_routes(PreparedRoutes prepared) {
    const auto& c = prepared.changes_;
    for (const auto& n : c.added) log::info("proxy.route_added", {{"route", n}});
    for (const auto& n : c.changed) log::info("proxy.route_changed", {{"route", n}});
    for (const auto& n : c.removed) log::info("proxy.route_removed", {{"route", n}});
    install_routes(std::move(prepared));
}

void Proxy::set_token_source(token::TokenSource* tokens) {
    on_each_worker([tokens](ProxyWorker& w) { w.ctx->tokens = tokens; });
}

void Proxy::install_routes(PreparedRoutes prepared) {
    RouteStatsList::Items stats;
    for (const auto& st : prepared.sets_.front()->state) stats.push_back(st->stats);
    stats_.publish_routes(std::move(stats));
    std::vector<std::shared_ptr<const RouteSet>> olds;
    for (std::size_t i = 0; i < workers_.size(); ++i) {
        olds.push_back(std::move(workers_[i]->routes));
        workers_[i]->routes = prepared.sets_[i];
    }
    on_each_worker([&](ProxyWorker& w) {
        // Dropped on the worker's thread: the pools' sockets belong to its event loop.
        std::shared_ptr<const RouteSet> old = std::move(olds[w.index]);
        w.ctx->routes = std::move(prepared.sets_[w.index]);
        // The pools the new table does not use drain: the requests still on them hold the
        // old table; their connections close when released.
        const auto& now = w.ctx->routes->state;
        std::erase_if(w.retired, [](const auto& r) { return r.expired(); });
        for (const auto& st : old->state)
            if (std::find(now.begin(), now.end(), st) == now.end()) {
                st->pool->retire();
                w.retired.push_back(st);
            }
    });
}

Proxy::~Proxy() {
    if (!stopped_) stop();
    join_workers();
    for (auto& w : workers_) {
        if (!w->own) continue;
        // The pools (and their sockets) go before the event loop they belong to; the loop's
        // abandoned session frames then go with it, as they do with the caller's io_context
        // (now, or after the last accept in progress on the caller's io_context that holds it).
        w->routes.reset();
        w->ctx->routes.reset();
        w->sweeper.reset();
        w->own.reset();
    }
}

void Proxy::join_workers() {
    if (!threads_running_) return;
    threads_running_ = false;
    for (auto& w : workers_) {
        w->guard.reset();
        w->own->stop();
    }
    for (auto& w : workers_)
        if (w->thread.joinable()) w->thread.join();
}

std::size_t Proxy::open_connections() const {
    return accept_ ? accept_->caps.open() : 0;
}

namespace {

net::ConnectionCaps::Limits caps_for(const config::Listener& l, std::uint64_t nofile) {
    const auto derived = net::derive_caps(nofile);
    net::ConnectionCaps::Limits limits;
    limits.total = l.max_connections ? l.max_connections : derived.total;
    // Derived: a quarter of the total (of the configured one, when only that is set).
    limits.per_caller = l.max_connections_per_caller ? l.max_connections_per_caller
                                                     : std::max<std::size_t>(1, limits.total / 4);
    return limits;
}

}  // namespace

// Listening sockets bound for a new [listener] and not in use yet; unused ones are closed
// (and a new Unix socket file removed) when this goes without a commit.
struct PreparedListener::Bound {
    std::vector<Proxy::TcpListen> tcp;  // addresses not bound before
    std::shared_ptr<net::unix_socket::acceptor> unix_socket;
    std::string unix_path;
    bool committed = false;
    ~Bound() {
        if (committed) return;
        net::error_code ec;
        for (auto& t : tcp) t.acc->close(ec);
        if (unix_socket) {
            unix_socket->close(ec);
            ::unlink(unix_path.c_str());
        }
    }
};

PreparedListener::PreparedListener() = default;
PreparedListener::~PreparedListener() = default;
PreparedListener::PreparedListener(PreparedListener&&) noexcept = default;

void Proxy::start() {
    const auto& l = *listener_;
    const std::uint64_t nofile = net::nofile_limit();
    const auto limits = caps_for(l, nofile);
    accept_ = std::make_unique<AcceptState>(limits, nofile);
    net::reserve_spare_fd();
    log::info("proxy.connection_caps", {{"max_connections", limits.total},
                                        {"max_connections_per_caller", limits.per_caller},
                                        {"rlimit_nofile", nofile}});
    if (l.max_connections > net::derive_caps(nofile).total)
        log::warn("proxy.connection_caps_above_fd_limit",
                  {{"max_connections", l.max_connections},
                   {"rlimit_nofile", nofile},
                   {"action",
                    "at EMFILE connections are refused and accepting pauses; raise "
                    "LimitNOFILE= or lower listener.max_connections"}});
    auto bound = bind_new(l);
    listen_on(std::move(bound));
    for (auto& w : workers_) {
        w->sweeper = std::make_unique<net::asio::steady_timer>(w->ex);
        net::asio::co_spawn(w->ex, sweep_pools(*w->sweeper, *w->ctx), net::asio::detached);
    }
    if (workers_.size() > 1) {
        for (auto& w : workers_) {
            w->guard.emplace(w->own->get_executor());
            w->thread = std::thread([io = w->own.get(), i = w->index] {
                const std::string name = "mtls-worker-" + std::to_string(i);
                ::pthread_setname_np(::pthread_self(), name.c_str());
                io->run();
            });
        }
        threads_running_ = true;
    }
    log::info("proxy.workers", {{"workers", workers_.size()}});
}

std::unique_ptr<PreparedListener::Bound> Proxy::bind_new(const config::Listener& next) const {
    auto b = std::make_unique<PreparedListener::Bound>();
    for (const auto& a : next.addresses) {
        auto kept = std::find_if(tcp_.begin(), tcp_.end(),
                                 [&](const TcpListen& t) { return t.address == a; });
        if (kept != tcp_.end() && kept->acc->is_open()) continue;  // bound already
        config::Listener one = next;
        one.addresses = {a};
        auto accs = bind_tcp(io_, one);  // throws "cannot listen on …"
        b->tcp.push_back(
            TcpListen{a, std::make_shared<net::tcp::acceptor>(std::move(accs.front()))});
    }
    const bool unix_kept = unix_ && unix_->is_open() && next.unix_socket == unix_path_;
    if (!next.unix_socket.empty() && !unix_kept) {
        b->unix_socket = std::make_shared<net::unix_socket::acceptor>(bind_unix(io_, next));
        b->unix_path = next.unix_socket;
    }
    return b;
}

void Proxy::listen_on(std::unique_ptr<PreparedListener::Bound> bound) {
    bound->committed = true;
    for (auto& t : bound->tcp) {
        net::error_code ec;
        auto ep = t.acc->local_endpoint(ec);
        log::info("proxy.listening", {{"address", ep.address().to_string()}, {"port", ep.port()}});
        net::asio::co_spawn(io_,
                            accept_loop(t.acc, workers_, worker_loops(), stats_, *accept_,
                                        tcp_caller_no_delay, tcp_key),
                            net::asio::detached);
        tcp_.push_back(std::move(t));
    }
    if (bound->unix_socket) {
        unix_ = std::move(bound->unix_socket);
        unix_path_ = bound->unix_path;
        log::info("proxy.listening", {{"unix_socket", unix_path_}});
        net::asio::co_spawn(
            io_,
            accept_loop(unix_, workers_, worker_loops(), stats_, *accept_, unix_caller, unix_key),
            net::asio::detached);
    }
}

PreparedListener Proxy::prepare_listener(const config::Listener& next) const {
    PreparedListener out;
    out.next_ = std::make_shared<const config::Listener>(next);
    out.bound_ = bind_new(next);
    return out;
}

void Proxy::commit_listener(PreparedListener prepared) {
    const config::Listener& next = *prepared.next_;
    const auto old = listener_;
    // The new sockets first, then the old ones that are no longer configured close.
    std::shared_ptr<net::unix_socket::acceptor> old_unix;
    std::string old_unix_path;
    const bool unix_new = prepared.bound_->unix_socket != nullptr;
    if (unix_new) {
        old_unix = std::move(unix_);
        old_unix_path = unix_path_;
    }
    listen_on(std::move(prepared.bound_));
    net::error_code ec;
    for (auto it = tcp_.begin(); it != tcp_.end();) {
        if (std::find(next.addresses.begin(), next.addresses.end(), it->address) !=
            next.addresses.end()) {
            ++it;
            continue;
        }
        log::info("proxy.listener_closed", {{"address", it->address}});
        it->acc->close(ec);
        it = tcp_.erase(it);
    }
    if (next.unix_socket.empty() && unix_) {  // no Unix socket any more
        old_unix = std::move(unix_);
        old_unix_path = unix_path_;
        unix_path_.clear();
    }
    if (old_unix && old_unix->is_open()) {
        old_unix->close(ec);
        // Only if it is still ours: the new socket may have been bound at the same path.
        if (old_unix_path != unix_path_) ::unlink(old_unix_path.c_str());
        log::info("proxy.listener_closed", {{"unix_socket", old_unix_path}});
    }
    if (unix_ && !unix_new && next.unix_socket_mode != old->unix_socket_mode &&
        ::chmod(unix_path_.c_str(), next.unix_socket_mode) != 0)
        log::warn("proxy.unix_socket_mode_failed",
                  {{"unix_socket", unix_path_}, {"error", std::strerror(errno)}});
    listener_ = prepared.next_;  // new connections use the new settings
    on_each_worker([next = listener_](ProxyWorker& w) { w.ctx->listener = next; });
    if (accept_) accept_->caps.set_limits(caps_for(next, net::nofile_limit()));
}

void Proxy::stop_accepting() {
    net::error_code ec;
    for (auto& t : tcp_) t.acc->close(ec);
    if (unix_ && unix_->is_open()) {
        unix_->close(ec);
        ::unlink(unix_path_.c_str());
    }
}

std::size_t Proxy::begin_drain(std::function<void()> on_empty) {
    // on_empty once the last worker's drain is empty (each calls its own once).
    struct Pending {
        std::atomic<std::size_t> left;
        std::function<void()> on_empty;
    };
    auto pending = std::make_shared<Pending>();
    pending->left = workers_.size();
    pending->on_empty = std::move(on_empty);
    std::atomic<std::size_t> in_flight{0};
    on_each_worker([&](ProxyWorker& w) {
        in_flight += w.ctx->drain.begin([pending] {
            if (--pending->left == 0) pending->on_empty();
        });
    });
    return in_flight;
}

std::size_t Proxy::cut_all() {
    std::atomic<std::size_t> cut{0};
    on_each_worker([&](ProxyWorker& w) { cut += w.ctx->drain.cut_all(); });
    return cut;
}

std::size_t Proxy::cut_identity(std::uint64_t through_generation) {
    std::atomic<std::size_t> cut{0};
    on_each_worker([&](ProxyWorker& w) {
        for (auto& st : w.ctx->routes->state) cut += st->pool->cut_generation(through_generation);
        for (const auto& r : w.retired)
            if (auto st = r.lock()) cut += st->pool->cut_generation(through_generation);
    });
    log::warn("proxy.identity_cut",
              {{"through_generation", through_generation}, {"requests_cut", cut.load()}});
    return cut;
}

void Proxy::stop() {
    stopped_ = true;
    stop_accepting();
    on_each_worker([](ProxyWorker& w) {
        if (w.sweeper) w.sweeper->cancel();
        for (auto& st : w.ctx->routes->state) st->pool->close_all();
    });
}

std::vector<net::tcp::endpoint> Proxy::tcp_endpoints() const {
    std::vector<net::tcp::endpoint> out;
    for (const auto& t : tcp_) {
        net::error_code ec;
        auto ep = t.acc->local_endpoint(ec);
        if (!ec) out.push_back(ep);
    }
    return out;
}

}  // namespace mtls::proxy
