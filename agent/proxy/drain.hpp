// Graceful stop of the proxy's app connections. Every session joins the drain for its life
// and says when it is inside a request (from its head read to its last response byte). At a
// stop the daemon calls begin(): from then on no connection is kept alive after its
// response, and connections waiting for a request are cut at once — unless the app has
// sent bytes the session has not read yet (a request on its way, or already whole in the
// socket's buffer): such a connection counts as in a request and is served, once, with
// `Connection: close`, instead of answered by a closed connection. When the last
// connection has ended the on_empty callback runs; cut_all() ends what remains (the
// listener.drain_timeout passed, or a second SIGTERM).
//
//   Drain drain;                                       // in ProxyContext
//   Drain::Member m(drain, [&] { shut_down_now(); });  // one per session
//   m.busy(true); …request…; m.busy(false);
//   if (drain.draining()) close_after_this_response();
//
// Single-threaded: one Drain per proxy worker, used on that worker's thread only (Proxy::
// begin_drain() and cut_all() run it on every worker). A Member may outlive its Drain (a session
// frame destroyed with the io_context): it then does nothing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

namespace mtls::proxy {

struct DrainState;

class Drain {
  public:
    // A session's membership, from its start to its end.
    class Member {
      public:
        // `cut` shuts the connection down at once (both directions of the app's socket, and
        // the partner connection it uses); the session then ends on its own errors.
        // `has_input` (may be empty): whether the app sent bytes the session has not read.
        Member(Drain& drain, std::function<void()> cut, std::function<bool()> has_input = {});
        ~Member();
        Member(const Member&) = delete;
        Member& operator=(const Member&) = delete;

        // Inside a request (true) or not (false). A session that finishes a request while
        // draining closes its connection itself instead of waiting for another request.
        void busy(bool b);

      private:
        std::shared_ptr<DrainState> state_;
        std::uint64_t id_ = 0;
    };

    Drain();
    ~Drain();
    Drain(const Drain&) = delete;
    Drain& operator=(const Drain&) = delete;

    bool draining() const;
    // Starts draining: idle connections are cut now, except those with unread input from
    // the app (now inside a request: served, then closed). `on_empty` runs (from the last
    // session's end, or from here when none is open) once no connection is open; it is
    // called once. Returns the requests in flight.
    std::size_t begin(std::function<void()> on_empty);
    // Cuts every open connection; returns how many were inside a request.
    std::size_t cut_all();

    std::size_t open() const;       // connections open
    std::size_t in_flight() const;  // of them, inside a request

  private:
    std::shared_ptr<DrainState> state_;
};

}  // namespace mtls::proxy
