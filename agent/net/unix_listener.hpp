// Creating a listening Unix stream socket file safely: bound under a temporary name in the
// target directory, given its mode and group, listening, then renamed over the final path —
// so there is never a moment where the path exists with a wider mode. A stale socket left by
// a crashed agent is replaced; a live one (something accepts connections on it) or a path
// that is not a socket is an error.
#pragma once

#include <sys/types.h>

#include <string>

namespace mtls::net {

struct UnixListenerOptions {
    std::string path;
    mode_t mode = 0660;
    std::string group;  // empty: keep the process's group
    int backlog = 64;
};

// Returns the listening fd (the caller owns it). Throws std::runtime_error with a message
// naming the path and what to do.
int make_unix_listener(const UnixListenerOptions& opt);

}  // namespace mtls::net
