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
    PeerCred p{cred.pid, cred.uid, cred.gid, {}};
#ifdef SO_PEERGROUPS
    std::vector<gid_t> groups(64);
    for (int attempt = 0; attempt < 2; ++attempt) {
        socklen_t glen = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
        if (::getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &glen) == 0) {
            groups.resize(glen / sizeof(gid_t));
            p.groups = std::move(groups);
            break;
        }
        if (errno != ERANGE) break;
        groups.resize(glen / sizeof(gid_t) + 1);  // the kernel said how many there are
    }
#endif
    return p;
}

namespace {

bool peer_in_group_database(uid_t uid, gid_t primary, const std::vector<gid_t>& wanted) {
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

bool peer_has_group(const PeerCred& peer, gid_t g) {
    return peer.gid == g ||
           std::find(peer.groups.begin(), peer.groups.end(), g) != peer.groups.end();
}

}  // namespace

bool allowed(const PeerCred& peer, const AccessPolicy& policy) {
    if (peer.uid == 0 || peer.uid == ::getuid()) return true;
    const auto& u = policy.allowed_uids;
    if (std::find(u.begin(), u.end(), peer.uid) != u.end()) return true;
    if (policy.admin_gid && peer_has_group(peer, *policy.admin_gid)) return true;
    const auto& g = policy.allowed_gids;
    if (g.empty()) return false;
    for (gid_t wanted : g)
        if (peer_has_group(peer, wanted)) return true;
    return peer_in_group_database(peer.uid, peer.gid, g);
}

std::optional<gid_t> group_id(const std::string& name) {
    struct group gr {};
    struct group* res = nullptr;
    std::vector<char> buf(16384);
    if (::getgrnam_r(name.c_str(), &gr, buf.data(), buf.size(), &res) != 0 || res == nullptr)
        return std::nullopt;
    return gr.gr_gid;
}

std::optional<std::string> group_name(gid_t gid) {
    struct group gr {};
    struct group* res = nullptr;
    std::vector<char> buf(16384);
    if (::getgrgid_r(gid, &gr, buf.data(), buf.size(), &res) != 0 || res == nullptr)
        return std::nullopt;
    return std::string(gr.gr_name);
}

}  // namespace mtls::admin
