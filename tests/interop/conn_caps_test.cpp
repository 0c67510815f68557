// Issue #16 item 2, hostile or careless neighbours on the host: connection caps and file
// descriptor exhaustion, against the real agent (SoftHSM2 token, the sandbox). Another uid
// (65534, via a forked child that drops to it with setresuid before connecting, so that the
// agent's SO_PEERCRED sees it) holds connections open:
//   - on the proxy's Unix socket up to listener.max_connections_per_caller: its next one is
//     refused at once with 503 too_many_connections, root is still served;
//   - with the agent's RLIMIT_NOFILE lowered (prlimit) below its caps: accepting hits
//     EMFILE, callers are refused rather than left hanging, the log stays short (rate
//     limited), and the agent serves again once the hog goes away;
//   - on the admin socket up to admin.max_connections_per_uid: root's status still works.
#include "tests/support/agent_world.hpp"
#include "tests/support/poll.hpp"
#include "tests/support/subprocess.hpp"

#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

namespace mtls::test {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;

constexpr uid_t kHogUid = 65534;

// What the hog child reports once it has connected: how many connections it holds, and
// the answer its extra "probe" connection got (its first bytes) and how long it took.
struct HogReport {
    int connected = 0;
    long probe_ms = -1;
    int probe_len = 0;
    char probe[1024] = {};
};

long now_ms() {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

// A process running as `uid` that connects `n` times to a Unix socket and holds the
// connections until release() (or its destructor); then opens one more connection, sends
// `probe` on it (may be empty) and reads what comes back within 10 s. The child only makes
// system calls (no allocation after fork).
class Hog {
  public:
    Hog(uid_t uid, const std::filesystem::path& socket, int n, std::string probe)
        : probe_(std::move(probe)) {
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", socket.c_str());
        int report[2], hold[2];
        if (::pipe2(report, O_CLOEXEC) != 0 || ::pipe2(hold, O_CLOEXEC) != 0)
            throw std::runtime_error("pipe2 failed");
        std::vector<int> fds(static_cast<std::size_t>(n) + 1, -1);
        pid_ = ::fork();
        if (pid_ < 0) throw std::runtime_error("fork failed");
        if (pid_ == 0) {
            ::close(report[0]);
            ::close(hold[1]);
            if (::setgroups(0, nullptr) != 0 || ::setresgid(uid, uid, uid) != 0 ||
                ::setresuid(uid, uid, uid) != 0)
                ::_exit(2);
            HogReport r;
            for (int i = 0; i < n; ++i) {
                int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
                if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
                    break;
                fds[static_cast<std::size_t>(i)] = fd;
                ++r.connected;
            }
            int p = ::socket(AF_UNIX, SOCK_STREAM, 0);
            timeval tv{10, 0};
            ::setsockopt(p, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
            const long t0 = now_ms();
            if (::connect(p, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
                if (!probe_.empty()) (void)!::send(p, probe_.data(), probe_.size(), MSG_NOSIGNAL);
                while (r.probe_len < static_cast<int>(sizeof r.probe) - 1) {
                    ssize_t got =
                        ::recv(p, r.probe + r.probe_len,
                               sizeof r.probe - 1 - static_cast<std::size_t>(r.probe_len), 0);
                    if (got <= 0) break;
                    r.probe_len += static_cast<int>(got);
                }
            }
            r.probe_ms = now_ms() - t0;
            ::close(p);
            (void)!::write(report[1], &r, sizeof r);
            char c;
            (void)!::read(hold[0], &c, 1);  // until the parent releases us
            ::_exit(0);
        }
        ::close(report[1]);
        ::close(hold[0]);
        report_fd_ = report[0];
        hold_fd_ = hold[1];
    }
    ~Hog() { release(); }

    // Waits for the child's report (it has connected and probed).
    HogReport report() {
        HogReport r;
        std::size_t got = 0;
        auto* p = reinterpret_cast<char*>(&r);
        while (got < sizeof r) {
            ssize_t n = ::read(report_fd_, p + got, sizeof r - got);
            if (n <= 0) throw std::runtime_error("the hog child died before reporting");
            got += static_cast<std::size_t>(n);
        }
        return r;
    }
    // Closes all its connections (the child exits).
    void release() {
        if (pid_ <= 0) return;
        ::close(hold_fd_);
        ::close(report_fd_);
        int st = 0;
        ::waitpid(pid_, &st, 0);
        pid_ = -1;
    }

  private:
    std::string probe_;
    pid_t pid_ = -1;
    int report_fd_ = -1, hold_fd_ = -1;
};

std::string probe_text(const HogReport& r) {
    return std::string(r.probe, static_cast<std::size_t>(r.probe_len));
}

// Lets uid 65534 reach sockets in the test directory (private by default); skips the test
// when not root (setresuid needs it).
bool open_dir_to_others(const AgentWorld& w) {
    if (::geteuid() != 0) return false;
    std::filesystem::permissions(w.dir.path(), std::filesystem::perms::owner_all |
                                                   std::filesystem::perms::group_exec |
                                                   std::filesystem::perms::others_exec);
    return true;
}

std::size_t count_lines(const std::string& log, const std::string& needle) {
    std::size_t n = 0;
    for (auto at = log.find(needle); at != std::string::npos; at = log.find(needle, at + 1)) ++n;
    return n;
}

// GET through the proxy's Unix socket as root: "<status> <body>".
CommandResult unix_call(const std::filesystem::path& socket) {
    return run_command({"curl", "-sS", "--max-time", "20", "-w", "\n%{http_code}", "--unix-socket",
                        socket.string(), "http://localhost/partner/api/secure/data"});
}

bool bound(const json& j) {
    return j.is_object() && j.contains("token") &&
           j["token"].value("bound_to_this_certificate", false);
}

// Re-creates w's agent (not started) with a proxy Unix socket that other uids may use and
// the given caps, started through `launcher`; returns the socket's path.
std::filesystem::path with_unix_socket(AgentWorld& w, int max_connections, int per_caller,
                                       std::vector<std::string> launcher = {}) {
    const auto sock = w.dir.path() / "proxy.sock";
    AgentSetup setup;
    setup.listener =
        "unix_socket = \"" + sock.string() +
        "\"\nunix_socket_mode = \"0666\"\nmax_connections = " + std::to_string(max_connections) +
        "\nmax_connections_per_caller = " + std::to_string(per_caller) + "\n";
    setup.launcher = std::move(launcher);
    w.agent = std::make_unique<AgentProcess>(w.dir.path(), w.token, *w.sandbox, setup);
    return sock;
}

const std::string kGet =
    "GET /partner/api/secure/data HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";

// One uid holding its share of the proxy's Unix socket cannot take more, and cannot keep
// root (on the same socket or on TCP) from being served.
TEST(ConnCaps, ProxyPerCallerCapRefusesTheHogFastAndServesRoot) {
    AgentWorld w("conncaps-proxy");
    const auto sock = with_unix_socket(w, 40, 10);
    if (!open_dir_to_others(w)) GTEST_SKIP() << "needs root to connect as another uid";
    w.agent->start();
    w.agent->wait_healthy();

    Hog hog(kHogUid, sock, 10, kGet);
    auto r = hog.report();
    ASSERT_EQ(r.connected, 10);
    const auto answer = probe_text(r);
    EXPECT_EQ(answer.rfind("HTTP/1.1 503", 0), 0u) << answer << "\nlog:\n" << w.agent->log();
    EXPECT_NE(answer.find("\"too_many_connections\""), std::string::npos) << answer;
    EXPECT_NE(answer.find("listener.max_connections_per_caller"), std::string::npos) << answer;
    EXPECT_LT(r.probe_ms, 2000) << "the refusal must be immediate";

    // Root is served, on TCP and on the same Unix socket, while the hog holds its share.
    EXPECT_TRUE(bound(w.call())) << w.agent->log();
    auto u = unix_call(sock);
    EXPECT_EQ(u.exit_code, 0) << u.err;
    EXPECT_NE(u.out.find("\n200"), std::string::npos) << u.out;
    EXPECT_NE(w.agent->log().find("event=proxy.connection_refused"), std::string::npos);
    auto m = w.agent->ctl({"metrics"});
    EXPECT_NE(m.out.find("mtls_agent_client_connections_refused_total{reason=\"max_connections_"
                         "per_caller\"} 1\n"),
              std::string::npos)
        << m.out;

    // Once the hog lets go, that uid is served again.
    hog.release();
    bool served = poll_until(
        [&] {
            Hog again(kHogUid, sock, 0, kGet);
            auto a = probe_text(again.report());
            return a.rfind("HTTP/1.1 200", 0) == 0;
        },
        20s, 100ms);
    EXPECT_TRUE(served) << w.agent->log();
}

// With the descriptor limit below the caps, accepting hits EMFILE: waiting callers are
// refused (not left hanging), accepting pauses instead of spinning, the log holds a few
// rate-limited lines (not millions), and the agent serves again when the hog goes away.
TEST(ConnCaps, FdExhaustionPausesAcceptingRefusesFastAndRecovers) {
    AgentWorld w("conncaps-emfile");
    const auto sock = with_unix_socket(w, 2000, 2000, {"prlimit", "--nofile=128:128"});
    if (!open_dir_to_others(w)) GTEST_SKIP() << "needs root to connect as another uid";
    w.agent->start();
    w.agent->wait_healthy();
    ASSERT_TRUE(bound(w.call())) << w.agent->log();
    EXPECT_NE(w.agent->log().find("event=proxy.connection_caps_above_fd_limit"), std::string::npos);

    Hog hog(kHogUid, sock, 300, "");
    auto r = hog.report();
    EXPECT_EQ(r.connected, 300);
    // Waiting callers are refused at once rather than left in the backlog.
    const auto probe = probe_text(r);
    EXPECT_NE(probe.find("\"too_many_connections\""), std::string::npos) << probe;
    EXPECT_LT(r.probe_ms, 5000);
    ASSERT_TRUE(poll_until(
        [&] { return w.agent->log().find("event=proxy.accept_failed") != std::string::npos; }, 20s))
        << w.agent->log();
    const auto t0 = std::chrono::steady_clock::now();

    // Root's call is answered (503 too_many_connections from the spare descriptor) rather
    // than left waiting in the backlog.
    auto c = run_command({"curl", "-sS", "--max-time", "10", "-w", "\n%{http_code}",
                          w.agent->url("api/secure/data")});
    EXPECT_NE(c.out.find("too_many_connections"), std::string::npos) << c.out << c.err;
    EXPECT_NE(c.out.find("\n503"), std::string::npos) << c.out << c.err;

    // An observation window while the descriptors stay exhausted: before the fix the accept
    // loop retried at once and wrote millions of lines.
    std::this_thread::sleep_until(t0 + 3s);
    const auto during = w.agent->log();
    EXPECT_LE(count_lines(during, "event=proxy.accept_failed"), 10u) << during.substr(0, 4000);

    hog.release();
    bool served = poll_until([&] { return bound(w.call()); }, 30s, 200ms);
    EXPECT_TRUE(served) << w.agent->log();
    EXPECT_TRUE(poll_until(
        [&] { return w.agent->log().find("event=proxy.accept_resumed") != std::string::npos; },
        10s))
        << w.agent->log();
    EXPECT_TRUE(w.agent->running());
}

// An allowed non-root uid that opens many admin connections gets its cap; root's
// `mtls-agentctl status` still works (before the fix it filled all 64 slots).
TEST(ConnCaps, AdminUidCapLeavesRootItsStatus) {
    AgentSetup setup;
    setup.admin = "mode = \"0666\"\nallowed_uids = [65534]\nmax_connections_per_uid = 4\n";
    AgentWorld w("conncaps-admin", {}, setup);
    if (!open_dir_to_others(w)) GTEST_SKIP() << "needs root to connect as another uid";
    w.agent->start();
    w.agent->wait_healthy();

    Hog hog(kHogUid, w.agent->socket_path(), 64, "");
    auto r = hog.report();
    EXPECT_EQ(r.connected, 64);
    const auto answer = probe_text(r);
    EXPECT_NE(answer.find("\"too_many_connections\""), std::string::npos) << answer;
    EXPECT_NE(answer.find("admin.max_connections_per_uid"), std::string::npos) << answer;
    EXPECT_LT(r.probe_ms, 2000);

    auto st = w.agent->ctl({"status", "--json"}, 10s);
    EXPECT_EQ(st.exit_code, 0) << st.out << st.err << "\nlog:\n" << w.agent->log();
    EXPECT_LE(count_lines(w.agent->log(), "event=admin.too_many_connections"), 2u);
}

}  // namespace
}  // namespace mtls::test
