#include "tests/support/ocsp_responder.hpp"

#include "tests/support/poll.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <stdexcept>

namespace mtls::test {
namespace {

int ocsp_listen_loopback(std::uint16_t port, std::uint16_t& bound) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw std::runtime_error("socket failed");
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 64) != 0) {
        ::close(fd);
        throw std::runtime_error("cannot listen on 127.0.0.1:" + std::to_string(port));
    }
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    bound = ntohs(a.sin_port);
    return fd;
}

int ocsp_connect_loopback(std::uint16_t port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

}  // namespace

OcspResponder::OcspResponder() {
    listen_fd_ = ocsp_listen_loopback(0, public_port_);
    // openssl's own port: bound and released here (loopback, a tiny race at worst), so that
    // direct_url() is known before the sandbox starts.
    ::close(ocsp_listen_loopback(0, backend_port_));
    acceptor_ = std::thread([this] { relay_loop(); });
}

OcspResponder::~OcspResponder() {
    stopping_ = true;
    down();
    up_.notify_all();
    if (acceptor_.joinable()) acceptor_.join();
    std::vector<std::thread> conns;
    {
        std::lock_guard lk(mu_);
        conns.swap(conns_);
    }
    for (auto& t : conns) t.join();
    if (openssl_) openssl_->stop();
}

std::string OcspResponder::url() const {
    return "http://127.0.0.1:" + std::to_string(public_port_) + "/";
}

std::string OcspResponder::direct_url() const {
    return "http://127.0.0.1:" + std::to_string(backend_port_) + "/";
}

void OcspResponder::start(const nlohmann::json& info, const std::filesystem::path& log_dir,
                          int next_minutes) {
    const auto& r = info.at("revocation");
    const std::uint16_t port = backend_port_;
    issuer_file_ = info.at("ca").at("issuing").get<std::string>();
    cert_file_ = info.at("server_cert").get<std::string>();
    openssl_ = std::make_unique<ChildProcess>(
        std::vector<std::string>{"openssl", "ocsp", "-index", r.at("index").get<std::string>(),
                                 "-CA", info.at("ca").at("issuing").get<std::string>(), "-rsigner",
                                 r.at("ocsp_signer").get<std::string>(), "-rkey",
                                 r.at("ocsp_signer_key").get<std::string>(), "-port",
                                 std::to_string(port), "-nmin", std::to_string(next_minutes),
                                 "-timeout", "5", "-ignore_err"},
        log_dir / "openssl-ocsp.log");
    // Ready once it says so (after binding). Not probed with a connection: `openssl ocsp`
    // serves one connection at a time and waits for a request on each.
    const bool ready = poll_until(
        [&] {
            return openssl_->log().find("waiting for OCSP client connections") != std::string::npos;
        },
        std::chrono::seconds(10), std::chrono::milliseconds(10));
    if (!ready) throw std::runtime_error("openssl ocsp did not start: " + openssl_->log());
}

void OcspResponder::reload() {
    auto r = run_command({"openssl", "ocsp", "-issuer", issuer_file_, "-cert", cert_file_, "-url",
                          direct_url(), "-noverify", "-timeout", "5"},
                         "", std::chrono::seconds(10));
    if (r.exit_code != 0)
        throw std::runtime_error("openssl ocsp request (reload) failed: " + r.out + r.err);
}

void OcspResponder::down() {
    std::lock_guard lk(mu_);
    if (listen_fd_ >= 0) {
        ::shutdown(listen_fd_, SHUT_RDWR);
        ::close(listen_fd_);
        listen_fd_ = -1;
    }
}

void OcspResponder::up() {
    std::lock_guard lk(mu_);
    if (listen_fd_ >= 0) return;
    std::uint16_t again = 0;
    listen_fd_ = ocsp_listen_loopback(public_port_, again);
    up_.notify_all();
}

void OcspResponder::relay_loop() {
    while (!stopping_) {
        int fd;
        {
            std::unique_lock lk(mu_);  // while down: until up() or the end
            up_.wait(lk, [this] { return listen_fd_ >= 0 || stopping_; });
            fd = listen_fd_;
        }
        if (fd < 0) continue;
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 50) <= 0) continue;
        int c = ::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
        if (c < 0) continue;
        ++requests_;
        std::lock_guard lk(mu_);
        conns_.emplace_back([this, c] { relay_one(c); });
    }
}

void OcspResponder::relay_one(int client) {
    int backend = ocsp_connect_loopback(backend_port_);
    if (backend < 0) {
        ::close(client);
        return;
    }
    pollfd fds[2] = {{client, POLLIN, 0}, {backend, POLLIN, 0}};
    bool open[2] = {true, true};
    char buf[16384];
    while ((open[0] || open[1]) && !stopping_) {
        if (::poll(fds, 2, 100) < 0) break;
        for (int i = 0; i < 2; ++i) {
            if (!open[i] || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            const ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
            if (n <= 0) {
                open[i] = false;
                fds[i].fd = -1;
                ::shutdown(i == 0 ? backend : client, SHUT_WR);
                continue;
            }
            if (::send(i == 0 ? backend : client, buf, static_cast<size_t>(n), MSG_NOSIGNAL) != n)
                open[0] = open[1] = false;
        }
    }
    ::close(client);
    ::close(backend);
}

}  // namespace mtls::test
