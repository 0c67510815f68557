#include "agent/net/accept_guard.hpp"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <mutex>

namespace mtls::net {
namespace {

std::mutex g_spare_mu;
int g_spare = -1;

}  // namespace

bool out_of_descriptors(const error_code& ec) {
    if (ec.category() != boost::system::system_category()) return false;
    const int v = ec.value();
    return v == EMFILE || v == ENFILE || v == ENOBUFS || v == ENOMEM;
}

void reserve_spare_fd() {
    std::lock_guard lock(g_spare_mu);
    if (g_spare < 0) g_spare = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
}

void refuse(int fd, std::string_view reply) {
    if (!reply.empty()) (void)!::send(fd, reply.data(), reply.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    ::shutdown(fd, SHUT_WR);
    std::array<char, 16384> sink;
    for (int i = 0; i < 8; ++i)  // at most 128 KiB, never waiting
        if (::recv(fd, sink.data(), sink.size(), MSG_DONTWAIT) <= 0) break;
}

std::size_t shed_pending(int listen_fd, std::string_view reply) {
    std::lock_guard lock(g_spare_mu);
    if (g_spare >= 0) {
        ::close(g_spare);
        g_spare = -1;
    }
    std::size_t shed = 0;
    for (; shed < 64; ++shed) {
        const int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) break;
        refuse(fd, reply);
        ::close(fd);
    }
    g_spare = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    return shed;
}

std::chrono::milliseconds AcceptBackoff::next() {
    auto d = next_;
    next_ = std::min(next_ * 2, kMax);
    return d;
}

std::uint64_t nofile_limit() {
    struct rlimit rl {};
    if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return 0;
    return rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : static_cast<std::uint64_t>(rl.rlim_cur);
}

std::uint64_t raise_nofile_limit() {
    struct rlimit rl {};
    if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return 0;
    const rlim_t want = std::min<rlim_t>(rl.rlim_max, 65536);
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
        struct rlimit raised = rl;
        raised.rlim_cur = want;
        if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) rl = raised;
    }
    return rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : static_cast<std::uint64_t>(rl.rlim_cur);
}

DerivedCaps derive_caps(std::uint64_t nofile) {
    constexpr std::uint64_t kMaxTotal = 4096;
    if (nofile == 0 || nofile > 1'000'000) nofile = 1'000'000;
    const std::uint64_t reserve = std::min<std::uint64_t>(128, nofile / 4);
    const std::uint64_t usable = nofile > reserve ? nofile - reserve : 0;
    DerivedCaps c;
    c.total = static_cast<std::size_t>(std::clamp<std::uint64_t>(usable / 2, 2, kMaxTotal));
    c.per_caller = std::max<std::size_t>(1, c.total / 4);
    return c;
}

}  // namespace mtls::net
