// Who is on the other end of a Unix socket (SO_PEERCRED), and may they use the admin socket.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace mtls::admin {

struct PeerCred {
    pid_t pid = 0;
    uid_t uid = static_cast<uid_t>(-1);
    gid_t gid = static_cast<gid_t>(-1);
};

// Throws std::system_error if the credentials cannot be read.
PeerCred peer_cred(int fd);

struct AccessPolicy {
    std::vector<uid_t> allowed_uids;
    std::vector<gid_t> allowed_gids;
};

// Root and the agent's own uid are always allowed; then the listed uids, then the listed
// gids (the peer's primary group, and its supplementary groups from the group database).
bool allowed(const PeerCred& peer, const AccessPolicy& policy);

}  // namespace mtls::admin
