#include "tests/support/notify_socket.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <system_error>

namespace mtls::test {

NotifySocket::NotifySocket(std::filesystem::path path) : path_(std::move(path)) {
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    const std::string p = path_.string();
    if (p.size() >= sizeof a.sun_path)
        throw std::runtime_error("NotifySocket: path too long: " + p);
    std::memcpy(a.sun_path, p.c_str(), p.size() + 1);
    ::unlink(p.c_str());
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd_ < 0) throw std::system_error(errno, std::generic_category(), "socket(AF_UNIX, DGRAM)");
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::chmod(p.c_str(), 0666) != 0) {
        int e = errno;
        ::close(fd_);
        fd_ = -1;
        throw std::system_error(e, std::generic_category(), "NotifySocket: bind/chmod " + p);
    }
}

NotifySocket::~NotifySocket() {
    if (fd_ >= 0) ::close(fd_);
    ::unlink(path_.c_str());
}

const std::filesystem::path& NotifySocket::path() const {
    return path_;
}

std::size_t NotifySocket::read_pending(std::chrono::milliseconds wait) {
    std::size_t added = 0;
    std::vector<char> buf(65536);
    bool first = true;
    for (;;) {
        if (first && wait.count() > 0) {
            pollfd p{fd_, POLLIN, 0};
            int rc = ::poll(&p, 1, static_cast<int>(wait.count()));
            if (rc < 0 && errno == EINTR) continue;
            if (rc <= 0) return added;
        }
        first = false;
        ssize_t n = ::recv(fd_, buf.data(), buf.size(), 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            return added;  // EAGAIN: nothing more pending
        }
        std::string datagram(buf.data(), static_cast<std::size_t>(n));
        std::size_t start = 0;
        while (start <= datagram.size()) {
            auto end = datagram.find('\n', start);
            if (end == std::string::npos) end = datagram.size();
            if (end > start) {
                lines_.push_back(datagram.substr(start, end - start));
                ++added;
            }
            start = end + 1;
        }
    }
}

std::optional<std::string> NotifySocket::wait_for(
    const std::function<bool(const std::string&)>& pred, std::chrono::milliseconds deadline) {
    using Clock = std::chrono::steady_clock;
    const auto until = Clock::now() + deadline;
    auto match = [&]() -> std::optional<std::string> {
        for (; next_ < lines_.size(); ++next_)
            if (pred(lines_[next_])) return lines_[next_++];
        return std::nullopt;
    };
    for (;;) {
        if (auto m = match()) return m;
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now());
        if (left.count() <= 0) {
            read_pending(std::chrono::milliseconds(0));
            return match();
        }
        read_pending(std::max(left, std::chrono::milliseconds(1)));
    }
}

std::vector<std::string> NotifySocket::lines() {
    read_pending(std::chrono::milliseconds(0));
    return lines_;
}

}  // namespace mtls::test
