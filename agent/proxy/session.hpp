// One local app connection: a coroutine that reads requests (HTTP/1.1 keep-alive), sends
// each to its route's partner over mTLS, and streams both bodies through fixed-size
// buffers. The steps of one request, in order:
//   read head (obs-fold and size checked first) -> prepare_request (header_rules.hpp:
//   validate, route, rewrite) -> identity snapshot -> token -> body (buffered when small
//   enough to replay, else streamed) -> upstream connection from the pool -> response head
//   (retry on a stale reused connection, or once after 401 invalid_token) -> response body
//   -> access log line.
#pragma once

#include "agent/identity/identity_store.hpp"
#include "agent/net/asio.hpp"
#include "agent/net/conn_caps.hpp"
#include "agent/proxy/drain.hpp"
#include "agent/proxy/router.hpp"
#include "agent/proxy/stats.hpp"
#include "agent/token/token_source.hpp"
#include "config/config.hpp"

#include <memory>
#include <vector>

namespace mtls::proxy {

class UpstreamPool;

// One route's live parts. A reload keeps them for a route whose configuration is unchanged
// (its pool keeps its warm connections); a changed route gets new ones (the counters stay,
// by name), and the old ones live on as long as the requests that started with them.
struct RouteState {
    std::shared_ptr<RouteStats> stats;
    std::unique_ptr<UpstreamPool> pool;
    std::string fingerprint;  // the route's configuration and CA bundle, to compare on reload
};

// The routes as one immutable unit, swapped whole by a reload: a request holds the set it
// started with until it ends, so it finishes on its route even if that was removed.
struct RouteSet {
    RouteTable table;
    std::vector<std::shared_ptr<RouteState>> state;  // index = route index
};

// Body buffers (64 KiB) for responses and streamed uploads, reused instead of taken from the
// heap and given back for every body: 64 concurrent 64 KiB responses otherwise grow and trim
// the heap again and again, and the copies into fresh pages fault. At most kKeep are kept
// (2 MiB). One per proxy worker (not shared between threads). Held by shared_ptr: a
// session's coroutine frames can outlive the Proxy (destroyed with the io_context), and a
// body buffer goes back to its pool from the frame's destructor.
class BodyBuffers {
  public:
    static constexpr std::size_t kSize = 64 * 1024;
    static constexpr std::size_t kKeep = 32;
    std::unique_ptr<char[]> take() {
        if (free_.empty()) return std::unique_ptr<char[]>(new char[kSize]);
        auto b = std::move(free_.back());
        free_.pop_back();
        return b;
    }
    void give(std::unique_ptr<char[]> b) {
        if (b && free_.size() < kKeep) free_.push_back(std::move(b));
    }
    std::size_t kept() const { return free_.size(); }

  private:
    std::vector<std::unique_ptr<char[]>> free_;
};

// A request's per-request state: the app connection's read buffer, the heads being
// written, the response parser, token and uploader (session.cpp). Taken when a request
// starts and given back when it ends, so an idle keep-alive connection holds none of it,
// while a busy one does not pay the heap for it on every request: the last ones given back
// are reused first (LIFO: their memory is the warmest), at most kKeep kept. One pool per
// io_context thread (not shared between threads); held by shared_ptr like BodyBuffers.
struct RequestState;
struct RequestStateDelete {
    void operator()(RequestState* s) const noexcept;
};
using RequestStatePtr = std::unique_ptr<RequestState, RequestStateDelete>;
class RequestStates {
  public:
    static constexpr std::size_t kKeep = 64;
    // A kept one (reused = true) or a new one.
    RequestStatePtr take(bool& reused);
    // Back to the pool, emptied (a large read buffer is freed, not kept).
    void give(RequestStatePtr s);
    std::size_t kept() const { return free_.size(); }

  private:
    std::vector<RequestStatePtr> free_;
};

// Coroutines that served a connection until it went idle and now wait for the next
// connection to become readable (session.cpp): a connection that wakes up is handed to one
// of them instead of a new coroutine being spawned for it (co_spawn allocates and posts).
// At most kKeep wait; one set per io_context thread; held by shared_ptr like BodyBuffers.
struct ParkedServer;
struct ParkedServers {
    static constexpr std::size_t kKeep = 64;
    std::vector<ParkedServer*> parked;  // back = parked last
};

// Memory for the operation of an idle connection's readability wait (session.cpp), made
// and freed once per request: blocks of its size are reused instead of going through malloc
// (whose per-size cache holds 7 blocks, fewer than the connections waiting at once), at most
// kKeep kept. Other sizes go to the heap. One per io_context thread (not shared between
// threads); held by shared_ptr like BodyBuffers.
class WaitOpBlocks {
  public:
    static constexpr std::size_t kKeep = 64;
    // `reused`: counts the blocks handed out again (ProxyStats::wait_ops_reused).
    explicit WaitOpBlocks(std::atomic<std::uint64_t>& reused) : reused_(reused) {
        free_.reserve(kKeep);
    }
    ~WaitOpBlocks() {
        for (void* p : free_) ::operator delete(p);
    }
    WaitOpBlocks(const WaitOpBlocks&) = delete;
    WaitOpBlocks& operator=(const WaitOpBlocks&) = delete;
    void* take(std::size_t n) {
        if (size_ == 0) size_ = n;  // the first request sets the size kept
        if (n == size_ && !free_.empty()) {
            void* p = free_.back();
            free_.pop_back();
            ++reused_;  // relaxed would do; a request's other counters are seq_cst too
            return p;
        }
        return ::operator new(n);
    }
    void give(void* p, std::size_t n) noexcept {
        if (n == size_ && free_.size() < kKeep)
            free_.push_back(p);  // reserved: does not allocate
        else
            ::operator delete(p);
    }
    std::size_t kept() const { return free_.size(); }

  private:
    std::atomic<std::uint64_t>& reused_;
    std::size_t size_ = 0;
    std::vector<void*> free_;
};

// The allocator Asio uses for that operation (the wait handler's associated allocator).
template <class T>
struct WaitOpAllocator {
    using value_type = T;
    WaitOpBlocks* blocks;  // kept alive by the handler that carries this allocator
    explicit WaitOpAllocator(WaitOpBlocks* b) noexcept : blocks(b) {}
    template <class U>
    WaitOpAllocator(const WaitOpAllocator<U>& o) noexcept : blocks(o.blocks) {}
    T* allocate(std::size_t n) { return static_cast<T*>(blocks->take(n * sizeof(T))); }
    void deallocate(T* p, std::size_t n) noexcept { blocks->give(p, n * sizeof(T)); }
    template <class U>
    bool operator==(const WaitOpAllocator<U>& o) const noexcept {
        return blocks == o.blocks;
    }
};

// What the sessions of one proxy worker share; owned by Proxy, used on that worker's thread
// (the counters and the identity store are shared by every worker: atomics, mutex).
struct ProxyContext {
    std::shared_ptr<const config::Listener> listener;  // replaced whole by a reload
    std::shared_ptr<const RouteSet> routes;
    identity::IdentityStore& identities;
    token::TokenSource* tokens = nullptr;  // may be null when no route has a token profile
    ProxyStats& stats;
    Drain drain;  // open sessions, for a graceful stop (drain.hpp)
    std::shared_ptr<BodyBuffers> bodies = std::make_shared<BodyBuffers>();
    std::shared_ptr<RequestStates> request_states = std::make_shared<RequestStates>();
    std::shared_ptr<ParkedServers> servers = std::make_shared<ParkedServers>();
    std::shared_ptr<WaitOpBlocks> wait_ops = std::make_shared<WaitOpBlocks>(stats.wait_ops_reused);
    // This worker's count of open app connections (ProxyStats::worker_open; the accept loop
    // adds one, the session's end takes it off). Null: not counted (tests' own contexts).
    std::atomic<std::uint64_t>* worker_open = nullptr;
};

// Request bodies up to this size (with a Content-Length) are read before sending, so the
// request can be replayed (stale pooled connection, 401 invalid_token).
inline constexpr std::uint64_t kReplayableBodyMax = 64 * 1024;

// The app's connection, TCP or Unix socket alike: one socket type, so the session is
// compiled once.
using ClientSocket = net::asio::generic::stream_protocol::socket;

// Serves one app connection until it closes: reads requests, routes them, answers. The
// admission `slot` is held until then. Between requests the connection waits outside any
// coroutine (a small object and a readability wait: an idle connection is small).
void start_session(ClientSocket socket, ProxyContext& ctx, Caller caller,
                   net::ConnectionCaps::Slot slot);

}  // namespace mtls::proxy
