#include "agent/proxy/upstream_pool.hpp"

#include "common/log.hpp"

#include <algorithm>

namespace mtls::proxy {

UpstreamPool::UpstreamPool(net::asio::any_io_executor ex, RouteTable::Entry entry,
                           std::shared_ptr<RouteStats> stats, std::shared_ptr<RouteUpstream> shared)
    : ex_(std::move(ex)),
      entry_(std::move(entry)),
      stats_(std::move(stats)),
      shared_(shared ? std::move(shared) : std::make_shared<RouteUpstream>(entry_)),
      resolver_(shared_->resolver) {}

UpstreamPool::~UpstreamPool() {
    close_all();
    busy_ = 0;  // leases outlive no pool (they end with their request); for the gauges
    update_gauges();
}

std::shared_ptr<TlsClientContext> UpstreamPool::context_for(const identity::IdentityPtr& id,
                                                            ProxyError& err) {
    if (tls_ && tls_->identity() == id) return tls_;
    {
        // The route's context for this identity, made by whichever worker needed it first
        // (an older identity's request in flight gets a context of its own, not shared).
        std::lock_guard lk(shared_->mu);
        auto& now = shared_->tls;
        if (now && now->identity() == id) {
            tls_ = now;
        } else {
            try {
                tls_ = std::make_shared<TlsClientContext>(entry_.route, entry_.target, id);
            } catch (const std::exception& e) {
                err = upstream_tls(e.what());
                return nullptr;
            }
            if (!now || now->identity()->generation() <= id->generation()) now = tls_;
        }
    }
    // A new identity: idle connections of the old one are never handed out again.
    for (auto& c : idle_) c->close();
    idle_.clear();
    update_gauges();
    return tls_;
}

std::unique_ptr<UpstreamConnection> UpstreamPool::reusable_idle(const identity::IdentityPtr& id) {
    const auto& t = entry_.route.timeouts;
    // Newest idle connection of this identity that received nothing since its response
    // (checked for every request: the idle wait may not have run yet).
    while (!idle_.empty()) {
        auto c = std::move(idle_.back());
        idle_.pop_back();
        c->unwatch();
        bool expired = UpstreamConnection::Clock::now() - c->idle_since() >= t.idle;
        if (c->generation() != id->generation() || expired) {
            c->close();
            continue;
        }
        if (c->revoked_now()) {  // the partner's certificate was revoked since
            log::warn("revocation.pooled_connection_closed", {{"route", entry_.route.name}});
            c->close();
            continue;
        }
        if (auto left = c->take_leftover(); left != UpstreamConnection::Leftover::nothing) {
            report(left, "before_reuse");
            c->close();
            continue;
        }
        ++busy_;
        update_gauges();
        c->enlist(leased_);
        return c;
    }
    return nullptr;
}

UpstreamPool::Lease UpstreamPool::take_idle(const identity::IdentityPtr& id, ProxyError& err) {
    if (!context_for(id, err)) return Lease{};
    auto c = reusable_idle(id);
    if (!c) {
        update_gauges();  // idle connections may have been closed
        return Lease{};
    }
    return Lease{std::move(c), true};
}

net::awaitable<UpstreamPool::Lease> UpstreamPool::acquire(identity::IdentityPtr id,
                                                          ProxyError& err) {
    auto tls = context_for(id, err);
    if (!tls) co_return Lease{};
    const auto& t = entry_.route.timeouts;
    auto wait_until = std::chrono::steady_clock::now() + t.connect;
    for (;;) {
        if (auto c = reusable_idle(id)) co_return Lease{std::move(c), true};
        if (busy_ + opening_ < std::max<std::size_t>(entry_.route.pool_max, 1)) break;
        // Full: wait for a release, up to the connect timeout.
        net::asio::steady_timer timer(ex_, wait_until);
        waiters_.push_back(&timer);
        net::error_code ec;
        co_await timer.async_wait(net::use_ec(ec));
        waiters_.remove(&timer);  // still listed when not woken by release()
        if (!ec) {
            err = pool_exhausted("route " + entry_.route.name + ": all " +
                                 std::to_string(entry_.route.pool_max) +
                                 " upstream connections are busy (raise pool_max?)");
            co_return Lease{};
        }
    }
    ++opening_;
    auto conn = std::make_unique<UpstreamConnection>(ex_, tls);
    net::error_code rec;
    auto endpoints = co_await resolver_.resolve(rec);
    if (rec)
        err = upstream_connect("cannot resolve " + entry_.target.host + ": " + rec.message());
    else
        err = co_await conn->open(endpoints, entry_.target, t);
    --opening_;
    if (err) {
        resolver_.forget();  // the next connection resolves again
        wake_one();
        co_return Lease{};
    }
    if (conn->resumed())
        ++stats_->handshakes_resumed;
    else
        ++stats_->handshakes_full;
    log::debug("proxy.upstream_connected", {{"route", entry_.route.name},
                                            {"upstream", entry_.target.authority},
                                            {"tls_resumed", conn->resumed()},
                                            {"identity_generation", id->generation()}});
    ++busy_;
    update_gauges();
    conn->enlist(leased_);
    co_return Lease{std::move(conn), false};
}

void UpstreamPool::release(std::unique_ptr<UpstreamConnection> conn, bool reusable) {
    if (!conn) return;
    conn->delist();
    if (busy_ > 0) --busy_;
    bool current = tls_ && tls_->identity() && conn->generation() == tls_->identity()->generation();
    auto left = UpstreamConnection::Leftover::nothing;
    if (reusable && current && !retired_ && idle_.size() < entry_.route.pool_max &&
        // What came with the response (no system call): the kernel is asked before reuse.
        (left = conn->take_leftover(false)) == UpstreamConnection::Leftover::nothing) {
        // Watched from the next sweep on (sweep()): most are reused before that.
        conn->mark_idle();
        idle_.push_back(std::move(conn));
    } else {
        if (left != UpstreamConnection::Leftover::nothing) report(left, "after_response");
        conn->close();
    }
    update_gauges();
    wake_one();
}

void UpstreamPool::wake_one() {
    if (waiters_.empty()) return;
    auto* t = waiters_.front();
    waiters_.pop_front();
    t->cancel();
}

void UpstreamPool::watch(UpstreamConnection& c) {
    const std::uint64_t id = ++watch_seq_;
    c.watch(id,
            [this, alive = std::weak_ptr<char>(alive_), conn = &c, id](const net::error_code& ec) {
                if (alive.expired() || ec == net::asio::error::operation_aborted) return;
                on_idle_input(conn, id, ec);
            });
}

void UpstreamPool::on_idle_input(UpstreamConnection* conn, std::uint64_t id,
                                 const net::error_code& ec) {
    // Still idle here and still this wait's connection (taken and pooled again: a newer
    // wait is pending; closed: gone from idle_). Compared by address, never dereferenced
    // before it is found.
    auto it = std::find_if(idle_.begin(), idle_.end(),
                           [&](const auto& c) { return c.get() == conn && c->watch_id() == id; });
    if (it == idle_.end()) return;
    conn->watch_fired();
    const auto left = ec ? UpstreamConnection::Leftover::closed : conn->take_leftover();
    using L = UpstreamConnection::Leftover;
    if (left == L::nothing || left == L::partial) {  // TLS-only records, or more to come
        watch(*conn);
        return;
    }
    report(left, "idle");
    conn->close();
    idle_.erase(it);
    update_gauges();
}

void UpstreamPool::report(UpstreamConnection::Leftover left, const char* when) {
    using L = UpstreamConnection::Leftover;
    if (left == L::closed) {  // the partner's idle timeout, most often: routine
        log::debug(
            "proxy.upstream_closed",
            {{"route", entry_.route.name}, {"upstream", entry_.target.authority}, {"when", when}});
        return;
    }
    log::warn(
        "proxy.upstream_unsolicited_bytes",
        {{"route", entry_.route.name},
         {"upstream", entry_.target.authority},
         {"when", when},
         {"detail", left == L::data ? "the partner sent data after a complete response (a second "
                                      "response, a body after a HEAD answer); the connection is "
                                      "closed, the bytes are dropped"
                                    : "part of a TLS record arrived after a complete response; the "
                                      "connection is closed"}});
}

void UpstreamPool::sweep() {
    const auto now = UpstreamConnection::Clock::now();
    const auto gen = tls_ && tls_->identity() ? tls_->identity()->generation() : 0;
    // What arrives while idle is the idle wait's business; this ages connections out and
    // arms the wait of those pooled since the last sweep.
    auto dead = [&](std::unique_ptr<UpstreamConnection>& c) {
        if (c->generation() == gen && now - c->idle_since() < entry_.route.timeouts.idle &&
            c->stream().socket().is_open())
            return false;
        c->close();
        return true;
    };
    idle_.erase(std::remove_if(idle_.begin(), idle_.end(), dead), idle_.end());
    for (auto& c : idle_)
        if (!c->watched()) watch(*c);
    update_gauges();
}

std::size_t UpstreamPool::cut_generation(std::uint64_t through) {
    auto burnt = [&](const UpstreamConnection& c) { return c.generation() <= through; };
    idle_.erase(std::remove_if(idle_.begin(), idle_.end(),
                               [&](std::unique_ptr<UpstreamConnection>& c) {
                                   if (!burnt(*c)) return false;
                                   c->close();
                                   return true;
                               }),
                idle_.end());
    if (tls_ && tls_->identity() && tls_->identity()->generation() <= through) tls_.reset();
    {
        std::lock_guard lk(shared_->mu);  // its sessions go too
        if (shared_->tls && shared_->tls->identity()->generation() <= through) shared_->tls.reset();
    }
    std::size_t cut = 0;
    const std::vector<UpstreamConnection*> busy(leased_->begin(), leased_->end());
    for (auto* c : busy)
        if (burnt(*c)) {
            c->close();  // the session's pending read or write fails
            ++cut;
        }
    update_gauges();
    return cut;
}

void UpstreamPool::close_all() {
    for (auto& c : idle_) c->close();
    idle_.clear();
    update_gauges();
}

void UpstreamPool::retire() {
    retired_ = true;
    close_all();
}

void UpstreamPool::update_gauges() {
    // Deltas: a retired pool of the route may still count its busy connections.
    stats_->pool_idle += idle_.size() - shown_idle_;
    stats_->pool_busy += busy_ - shown_busy_;
    shown_idle_ = idle_.size();
    shown_busy_ = busy_;
}

}  // namespace mtls::proxy
