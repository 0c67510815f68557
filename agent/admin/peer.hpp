// Who is on the other end of a Unix socket (SO_PEERCRED, SO_PEERGROUPS), and may they use the
// admin socket.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

namespace mtls::admin {

struct PeerCred {
    pid_t pid = 0;
    uid_t uid = static_cast<uid_t>(-1);
    gid_t gid = static_cast<gid_t>(-1);
    // The peer's supplementary groups when it connected (SO_PEERGROUPS; empty if the kernel
    // cannot say).
    std::vector<gid_t> groups;
};

// Throws std::system_error if the credentials cannot be read.
PeerCred peer_cred(int fd);

struct AccessPolicy {
    std::vector<uid_t> allowed_uids;
    std::vector<gid_t> allowed_gids;
    // The admin group ([admin] group, or the agent's own group): its members may use the
    // socket (primary group or a supplementary group of the connecting process).
    std::optional<gid_t> admin_gid;
    std::string admin_group_name;  // for messages
};

// Root and the agent's own uid are always allowed; then the listed uids; then members of
// the admin group (the peer's primary group or its supplementary groups as the kernel saw
// them at connect); then the listed gids (the peer's primary group, its supplementary groups
// at connect, and its groups in the group database).
bool allowed(const PeerCred& peer, const AccessPolicy& policy);

// The gid of a group name; nullopt when there is no such group.
std::optional<gid_t> group_id(const std::string& name);
// The name of a gid; nullopt when the group database does not know it.
std::optional<std::string> group_name(gid_t gid);

}  // namespace mtls::admin
