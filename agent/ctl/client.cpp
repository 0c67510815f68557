#include "agent/ctl/client.hpp"

#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace mtls::ctl {
namespace {

struct Fd {
    int fd = -1;
    ~Fd() {
        if (fd >= 0) ::close(fd);
    }
};

using Clock = std::chrono::steady_clock;

int remaining_ms(Clock::time_point deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    return left.count() < 0 ? 0 : static_cast<int>(left.count());
}

void wait_for(int fd, short events, Clock::time_point deadline, const std::string& path) {
    for (;;) {
        pollfd p{fd, events, 0};
        int rc = ::poll(&p, 1, remaining_ms(deadline));
        if (rc > 0) return;
        if (rc == 0) throw Unreachable("timed out waiting for the agent on " + path);
        if (errno != EINTR) throw Unreachable(std::string("poll: ") + std::strerror(errno));
    }
}

}  // namespace

std::string refusal_message(const std::string& path) {
    std::string group;
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0) {
        struct group gr {};
        struct group* res = nullptr;
        std::vector<char> buf(16384);
        if (::getgrgid_r(st.st_gid, &gr, buf.data(), buf.size(), &res) == 0 && res != nullptr)
            group = gr.gr_name;
    }
    std::string user;
    {
        struct passwd pw {};
        struct passwd* res = nullptr;
        std::vector<char> buf(16384);
        if (::getpwuid_r(::getuid(), &pw, buf.data(), buf.size(), &res) == 0 && res != nullptr)
            user = pw.pw_name;
        else
            user = "uid " + std::to_string(::getuid());
    }
    const std::string who = group.empty() ? "the admin group" : "group " + group;
    return "refused: " + path + ": only root, the agent's user and members of " + who +
           " may use the admin socket (usermod -aG " + (group.empty() ? "GROUP" : group) + " " +
           user + ", then log in again)";
}

nlohmann::json call(const std::string& path, const admin::Request& req,
                    std::chrono::milliseconds timeout) {
    auto deadline = Clock::now() + timeout;
    Fd s;
    s.fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s.fd < 0) throw Unreachable(std::string("socket: ") + std::strerror(errno));
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    if (path.size() >= sizeof a.sun_path) throw Unreachable("socket path too long: " + path);
    std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
    if (::connect(s.fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        int e = errno;
        if (e == EACCES || e == EPERM) throw Refused(refusal_message(path));
        std::string hint = (e == ENOENT || e == ECONNREFUSED)
                               ? " (is mtls-agent running? see systemctl status mtls-agent)"
                               : "";
        throw Unreachable("cannot connect to " + path + ": " + std::strerror(e) + hint);
    }
    std::string out = admin::request_line(req);
    size_t off = 0;
    while (off < out.size()) {
        wait_for(s.fd, POLLOUT, deadline, path);
        ssize_t n = ::send(s.fd, out.data() + off, out.size() - off, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            // The agent may already have answered and closed (a refusal is sent before the
            // request is read): read what it said before giving up.
            if (errno == EPIPE || errno == ECONNRESET) break;
            throw Unreachable("sending to " + path + ": " + std::strerror(errno));
        }
        off += static_cast<size_t>(n);
    }
    std::string in;
    char buf[8192];
    while (in.find('\n') == std::string::npos) {
        wait_for(s.fd, POLLIN, deadline, path);
        ssize_t n = ::recv(s.fd, buf, sizeof buf, 0);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            throw Unreachable("reading from " + path + ": " + std::strerror(errno));
        }
        if (n == 0) throw Unreachable("the agent closed the connection without an answer");
        in.append(buf, static_cast<size_t>(n));
        if (in.size() > (64u << 20)) throw Unreachable("answer larger than 64 MiB");
    }
    in.resize(in.find('\n'));
    auto j = nlohmann::json::parse(in, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("ok"))
        throw Unreachable("the agent sent an answer that is not a protocol response");
    return j;
}

}  // namespace mtls::ctl
