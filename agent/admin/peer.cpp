#include "agent/admin/peer.hpp"

#include <grp.h>
#include <pwd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <system_error>

namespace mtls::admin {

PeerCred peer_cred(int fd) {
    struct ucred cred {};
    socklen_t len = sizeof cred;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
        throw std::system_error(errno, std::generic_category(), "SO_PEERCRED");
    return PeerCred{cred.pid, cred.uid, cred.gid};
}

namespace {

bool in_supplementary_groups(uid_t uid, gid_t primary, const std::vector<gid_t>& wanted) {
    struct passwd pw {};
    struct passwd* result = nullptr;
    std::vector<char> buf(16384);
    if (::getpwuid_r(uid, &pw, buf.data(), buf.size(), &result) != 0 || result == nullptr)
        return false;
    int n = 64;
    std::vector<gid_t> groups(static_cast<size_t>(n));
    if (::getgrouplist(pw.pw_name, primary, groups.data(), &n) < 0) {
        groups.resize(static_cast<size_t>(n));
        if (::getgrouplist(pw.pw_name, primary, groups.data(), &n) < 0) return false;
    }
    groups.resize(static_cast<size_t>(n));
    return std::any_of(groups.begin(), groups.end(), [&](gid_t g) {
        return std::find(wanted.begin(), wanted.end(), g) != wanted.end();
    });
}

}  // namespace

bool allowed(const PeerCred& peer, const AccessPolicy& policy) {
    if (peer.uid == 0 || peer.uid == ::getuid()) return true;
    const auto& u = policy.allowed_uids;
    if (std::find(u.begin(), u.end(), peer.uid) != u.end()) return true;
    const auto& g = policy.allowed_gids;
    if (g.empty()) return false;
    if (std::find(g.begin(), g.end(), peer.gid) != g.end()) return true;
    return in_supplementary_groups(peer.uid, peer.gid, g);
}

}  // namespace mtls::admin
