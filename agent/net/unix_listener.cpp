#include "agent/net/unix_listener.hpp"

#include "common/log.hpp"

#include <grp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <utility>

namespace mtls::net {
namespace {

std::string errno_text() {
    return std::strerror(errno);
}

sockaddr_un address_of(const std::string& path) {
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    if (path.size() >= sizeof a.sun_path)
        throw std::runtime_error("socket path " + path + " is longer than " +
                                 std::to_string(sizeof a.sun_path - 1) + " bytes");
    std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
    return a;
}

// Is something accepting connections on this socket path?
bool is_live(const std::string& path) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    auto a = address_of(path);
    bool live = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ::close(fd);
    return live;
}

struct FdGuard {
    int fd;
    ~FdGuard() {
        if (fd >= 0) ::close(fd);
    }
    int release() { return std::exchange(fd, -1); }
};

}  // namespace

int make_unix_listener(const UnixListenerOptions& opt) {
    namespace fs = std::filesystem;
    fs::path final_path(opt.path);
    if (!final_path.is_absolute())
        throw std::runtime_error("socket path " + opt.path + " must be absolute");
    fs::path dir = final_path.parent_path();
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0)
        throw std::runtime_error("socket directory " + dir.string() + ": " + errno_text() +
                                 " (create it, e.g. RuntimeDirectory= in the unit)");
    if (::lstat(final_path.c_str(), &st) == 0) {
        if (!S_ISSOCK(st.st_mode))
            throw std::runtime_error(opt.path +
                                     " exists and is not a socket; refusing to replace it");
        if (is_live(opt.path))
            throw std::runtime_error("another process is listening on " + opt.path +
                                     " (is mtls-agent already running?)");
    }

    gid_t gid = static_cast<gid_t>(-1);
    if (!opt.group.empty()) {
        struct group gr {};
        struct group* res = nullptr;
        char buf[4096];
        if (::getgrnam_r(opt.group.c_str(), &gr, buf, sizeof buf, &res) != 0 || !res)
            throw std::runtime_error("group \"" + opt.group + "\" does not exist");
        gid = gr.gr_gid;
    }

    fs::path tmp =
        dir / ("." + final_path.filename().string() + "." + std::to_string(::getpid()) + ".tmp");
    ::unlink(tmp.c_str());
    FdGuard fd{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)};
    if (fd.fd < 0) throw std::runtime_error("socket(AF_UNIX): " + errno_text());
    auto a = address_of(tmp.string());
    // The socket file gets 0600 from the umask at bind time, then exactly opt.mode.
    mode_t old = ::umask(0177);
    int rc = ::bind(fd.fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::umask(old);
    if (rc != 0) throw std::runtime_error("bind " + tmp.string() + ": " + errno_text());
    auto cleanup_fail = [&](const std::string& what) {
        std::string msg = what + ": " + errno_text();
        ::unlink(tmp.c_str());
        throw std::runtime_error(msg);
    };
    // The agent is a member of the group (the unit's SupplementaryGroups=): no capability
    // needed. When it is not, the socket keeps the agent's group and only root and the
    // agent's user can reach it: a warning, not a failure to start.
    if (gid != static_cast<gid_t>(-1) && ::chown(tmp.c_str(), static_cast<uid_t>(-1), gid) != 0)
        log::warn(
            "agent.socket_group_not_set",
            {{"socket", opt.path},
             {"group", opt.group},
             {"error", errno_text()},
             {"action", "the socket keeps the agent's group; add the agent's user to group " +
                            opt.group + " (SupplementaryGroups=" + opt.group + " in the unit)"}});
    if (::chmod(tmp.c_str(), opt.mode) != 0) cleanup_fail("chmod " + tmp.string());
    if (::listen(fd.fd, opt.backlog) != 0) cleanup_fail("listen " + tmp.string());
    if (::rename(tmp.c_str(), final_path.c_str()) != 0)
        cleanup_fail("rename " + tmp.string() + " -> " + opt.path);
    return fd.release();
}

}  // namespace mtls::net
