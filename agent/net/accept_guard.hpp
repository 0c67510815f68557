// What an accept loop does when the process runs out of file descriptors (EMFILE, ENFILE):
// take the waiting connections off the backlog with a spare descriptor and refuse them (so
// the backlog does not wedge and callers learn at once), then pause accepting with exponential
// backoff instead of retrying at once. Also the "refuse fast" of a connection over a cap:
// a short answer sent without blocking, then close without a reset.
#pragma once

#include "agent/net/asio.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace mtls::net {

// EMFILE, ENFILE, ENOBUFS, ENOMEM: accept failed for want of descriptors or kernel memory.
bool out_of_descriptors(const error_code& ec);

// Opens the process-wide spare descriptor (/dev/null) if it is not open. Call at start-up,
// before the descriptors run out.
void reserve_spare_fd();

// At EMFILE: closes the spare descriptor, takes the connections waiting on `listen_fd` off
// the backlog one at a time (at most 64) and refuses each with `reply`, then reopens the
// spare. Returns how many were refused.
std::size_t shed_pending(int listen_fd, std::string_view reply);

// Sends what of `reply` fits in the socket buffer without blocking, shuts down sending and
// drops what the peer already sent (so that closing sends FIN rather than a reset that could
// destroy the reply). Does not close `fd`.
void refuse(int fd, std::string_view reply);

// 10 ms, 20 ms, … up to 1 s; reset() after a successful accept.
class AcceptBackoff {
  public:
    std::chrono::milliseconds next();
    void reset() { next_ = kFirst; }

  private:
    static constexpr std::chrono::milliseconds kFirst{10};
    static constexpr std::chrono::milliseconds kMax{1000};
    std::chrono::milliseconds next_ = kFirst;
};

// The process's RLIMIT_NOFILE soft limit (0 when it cannot be read).
std::uint64_t nofile_limit();
// Raises the soft RLIMIT_NOFILE towards the hard limit (at most to 65536; what systemd's
// LimitNOFILE= or ulimit -Hn allows). Returns the soft limit in force afterwards.
std::uint64_t raise_nofile_limit();

// Default connection caps for the proxy derived from the descriptor limit: a reserve for
// the token, logs, state files, EST and token clients and the admin socket, then half of the
// rest (each app connection may hold an upstream connection), at most 4096; one caller a
// quarter of that.
struct DerivedCaps {
    std::size_t total = 0;
    std::size_t per_caller = 0;
};
DerivedCaps derive_caps(std::uint64_t nofile);

}  // namespace mtls::net
