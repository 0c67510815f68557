// The packaged agent as systemd runs it: /usr/bin/mtls-agent from the .deb, as the unit's
// User= with the unit's SupplementaryGroups=, the PIN in a credentials directory
// (pin_credential, as LoadCredential= delivers it), a NOTIFY_SOCKET and WATCHDOG_USEC that
// this test reads in place of systemd — against the partner sandbox and a SoftHSM2 token.
// There is no systemd as PID 1 on the test machines, so the unit's identity is applied with
// setpriv, the way systemd's exec step applies User=/Group=/SupplementaryGroups=.
#include "tests/package/package_fixture.hpp"
#include "tests/support/agent_process.hpp"
#include "tests/support/notify_socket.hpp"
#include "tests/support/poll.hpp"
#include "tests/support/sandbox_process.hpp"
#include "tests/support/softhsm_token.hpp"
#include "tests/support/temp_dir.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <grp.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace mtls::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// `Key=value` of the installed unit's [Service] section (the last one wins, as in systemd).
std::string unit_value(const fs::path& unit, const std::string& key) {
    std::ifstream in(unit);
    std::string line, value;
    while (std::getline(in, line))
        if (line.rfind(key + "=", 0) == 0) value = line.substr(key.size() + 1);
    return value;
}

void chown_tree(const fs::path& root, uid_t uid, gid_t gid) {
    if (::lchown(root.c_str(), uid, gid) != 0) throw std::runtime_error("chown " + root.string());
    for (const auto& e : fs::recursive_directory_iterator(root))
        if (::lchown(e.path().c_str(), uid, gid) != 0)
            throw std::runtime_error("chown " + e.path().string());
}

// A plain TCP connection to the proxy that the test writes by hand (a request whose body
// is still being sent while the agent is told to stop).
class RawConnection {
  public:
    explicit RawConnection(std::uint16_t port) {
        fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(port);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        connected_ = fd_ >= 0 && ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
        error_ = connected_ ? 0 : errno;
    }
    ~RawConnection() {
        if (fd_ >= 0) ::close(fd_);
    }
    RawConnection(const RawConnection&) = delete;
    RawConnection& operator=(const RawConnection&) = delete;

    bool connected() const { return connected_; }
    int error() const { return error_; }
    bool send(const std::string& data) {
        return ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL) ==
               static_cast<ssize_t>(data.size());
    }
    // Reads until `done(received)` holds, the peer closes, or the deadline passes.
    std::string receive(const std::function<bool(const std::string&)>& done,
                        std::chrono::milliseconds deadline) {
        std::string got;
        const auto end = std::chrono::steady_clock::now() + deadline;
        while (!done(got)) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                end - std::chrono::steady_clock::now());
            if (left.count() <= 0) break;
            pollfd p{fd_, POLLIN, 0};
            if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
            char buf[4096];
            auto n = ::recv(fd_, buf, sizeof buf, 0);
            if (n <= 0) break;
            got.append(buf, static_cast<std::size_t>(n));
        }
        return got;
    }

  private:
    int fd_ = -1;
    bool connected_ = false;
    int error_ = 0;
};

std::string chunk(std::size_t n, char c) {
    std::ostringstream s;
    s << std::hex << n << "\r\n" << std::string(n, c) << "\r\n";
    return s.str();
}

class InstalledAgent : public package::InstalledPackageTest {};

TEST_F(InstalledAgent, RunsAsTheUnitsUserAndTellsTheNotifySocketTheTruth) {
    package::install_deb(package::build_deb());
    const fs::path unit = "/lib/systemd/system/mtls-agent.service";
    ASSERT_TRUE(fs::exists(unit));
    const auto user = unit_value(unit, "User");
    auto groups = unit_value(unit, "SupplementaryGroups");
    ASSERT_EQ(user, "mtls-agent");
    ASSERT_FALSE(groups.empty()) << "the unit names no SupplementaryGroups";
    for (auto& ch : groups)
        if (ch == ' ') ch = ',';
    const passwd* pw = ::getpwnam(user.c_str());
    ASSERT_NE(pw, nullptr) << "the package did not create the user " << user;
    const uid_t uid = pw->pw_uid;
    const gid_t gid = pw->pw_gid;
    const group* admin = ::getgrnam("mtls-admin");
    ASSERT_NE(admin, nullptr) << "the package did not create the group mtls-admin";
    const gid_t admin_gid = admin->gr_gid;

    TempDir dir("mtls-installed");
    TempToken token = TempToken::create("mtls-installed");
    SandboxProcess sandbox(dir.path(), AgentProcess::sandbox_args(dir.path()));

    // The PIN where systemd's LoadCredential= puts it: $CREDENTIALS_DIRECTORY/token-pin,
    // readable by the service's user only.
    const fs::path creds = dir / "credentials";
    fs::create_directories(creds);
    { std::ofstream(creds / "token-pin") << token.read_pin(); }
    fs::permissions(creds / "token-pin", fs::perms::owner_read);
    fs::permissions(creds, fs::perms::owner_read | fs::perms::owner_exec);

    AgentSetup setup;
    setup.binary = "/usr/bin/mtls-agent";
    setup.pin = "pin_credential = \"token-pin\"";
    setup.admin = "group = \"mtls-admin\"";
    setup.launcher = {"setpriv",
                      "--reuid=" + std::to_string(uid),
                      "--regid=" + std::to_string(gid),
                      "--groups=" + groups,
                      "--inh-caps=-all",
                      "--bounding-set=-all",
                      "--"};
    AgentProcess agent(dir.path(), token, sandbox, setup);
    NotifySocket notify(dir / "notify.sock");

    // Everything the agent reads or writes belongs to its user, as the unit's
    // StateDirectory= and the operator's setup would make it; the test (root) still reads it.
    chown_tree(dir.path(), uid, gid);
    chown_tree(token.dir.path(), uid, gid);
    fs::permissions(dir.path(), fs::perms::owner_all | fs::perms::group_read |
                                    fs::perms::group_exec | fs::perms::others_read |
                                    fs::perms::others_exec);

    agent.start({{"NOTIFY_SOCKET", notify.path().string()},
                 {"WATCHDOG_USEC", "1000000"},
                 {"CREDENTIALS_DIRECTORY", creds.string()}});

    auto is = [](std::string want) { return [want](const std::string& l) { return l == want; }; };
    auto starts = [](std::string want) {
        return [want](const std::string& l) { return l.rfind(want, 0) == 0; };
    };
    ASSERT_TRUE(notify.wait_for(is("READY=1"), 60s)) << agent.log();
    auto serving = notify.wait_for(starts("STATUS=serving"), 10s);
    ASSERT_TRUE(serving) << agent.log();
    {
        auto seen = notify.lines();
        auto ready = std::find(seen.begin(), seen.end(), "READY=1");
        EXPECT_TRUE(std::any_of(seen.begin(), ready, starts("STATUS=")))
            << "no STATUS= before READY=1 (enrolling)";
    }
    auto st = agent.wait_healthy();
    EXPECT_EQ(st["identity"]["key_type"], "ec-p256");
    // The process really is the unit's user.
    {
        std::ifstream status("/proc/" + std::to_string(agent.pid()) + "/status");
        std::string line, uids;
        while (std::getline(status, line))
            if (line.rfind("Uid:", 0) == 0) uids = line;
        EXPECT_NE(uids.find("\t" + std::to_string(uid) + "\t"), std::string::npos) << uids;
    }

    // Watchdog pings keep coming from the event loop (WATCHDOG_USEC = 1 s: one per 0.5 s).
    auto pings = [&] {
        auto l = notify.lines();
        return std::count(l.begin(), l.end(), "WATCHDOG=1");
    };
    const auto before = pings();
    EXPECT_TRUE(poll_until([&] { return pings() >= before + 3; }, 10s))
        << "watchdog pings: " << pings();

    // The EST server stops answering well: a renewal fails, STATUS says degraded; back when
    // it recovers.
    sandbox.set_mode("est=500");
    agent.ctl({"renew", "--wait"});
    EXPECT_TRUE(notify.wait_for(starts("STATUS=degraded"), 30s)) << agent.log();
    sandbox.set_mode("est=normal");
    auto r = agent.ctl({"renew", "--wait"});
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_TRUE(notify.wait_for(starts("STATUS=serving"), 30s)) << agent.log();

    // The admin socket: a member of mtls-admin gets status, anybody else is refused (4).
    const std::string ctl = "/usr/bin/mtls-agentctl";
    auto as_nobody = [&](const std::string& extra_groups) {
        std::vector<std::string> argv{"setpriv", "--reuid=65534", "--regid=65534"};
        argv.push_back(extra_groups.empty() ? "--clear-groups" : "--groups=" + extra_groups);
        for (const auto& a : {std::string("--"), ctl, std::string("--socket"),
                              agent.socket_path().string(), std::string("status")})
            argv.push_back(a);
        return run_command(argv, "", 20s);
    };
    auto member = as_nobody(std::to_string(admin_gid));
    EXPECT_EQ(member.exit_code, 0) << member.out << member.err;
    EXPECT_NE(member.out.find("healthy"), std::string::npos) << member.out;
    auto outsider = as_nobody("");
    EXPECT_EQ(outsider.exit_code, 4) << outsider.out << outsider.err;
    EXPECT_NE(outsider.err.find("mtls-admin"), std::string::npos) << outsider.err;

    // SIGTERM while a request's body is still streaming in: STOPPING=1, no new connections,
    // the request finishes (the partner sees every byte), then exit 0.
    RawConnection upload(agent.port());
    ASSERT_TRUE(upload.connected());
    ASSERT_TRUE(upload.send(
        "POST /partner/echo/sink HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(agent.port()) +
        "\r\nContent-Type: application/octet-stream\r\n"
        "Transfer-Encoding: chunked\r\n\r\n" +
        chunk(4096, 'a')));
    // SIGTERM once the agent is inside the request (it holds an upstream connection for
    // it): before its head is read a connection is idle, and a drain closes idle ones.
    auto busy_upstream = [&] {
        std::istringstream in(agent.ctl({"metrics"}).out);
        for (std::string line; std::getline(in, line);)
            if (line.starts_with("mtls_agent_upstream_connections{") &&
                line.find("state=\"busy\"") != std::string::npos)
                return std::atoi(line.c_str() + line.rfind(' ') + 1);
        return -1;
    };
    ASSERT_TRUE(poll_until([&] { return busy_upstream() == 1; }, 10s)) << agent.log();
    ASSERT_EQ(::kill(agent.pid(), SIGTERM), 0);
    EXPECT_TRUE(notify.wait_for(is("STOPPING=1"), 10s)) << agent.log();
    EXPECT_TRUE(poll_until(
        [&] {
            RawConnection late(agent.port());
            return !late.connected() && late.error() == ECONNREFUSED;
        },
        10s))
        << "the proxy still accepts connections after STOPPING=1";
    ASSERT_TRUE(upload.send(chunk(4096, 'b') + chunk(4096, 'c') + "0\r\n\r\n"));
    auto answer =
        upload.receive([](const std::string& s) { return s.find("}") != std::string::npos; }, 20s);
    EXPECT_EQ(answer.rfind("HTTP/1.1 200", 0), 0u) << answer << agent.log();
    EXPECT_NE(answer.find("\"bytes\":12288"), std::string::npos) << answer;
    auto rc = agent.wait_exit(30s);
    ASSERT_TRUE(rc) << "the agent did not exit after SIGTERM; log:\n" << agent.log();
    EXPECT_EQ(*rc, 0) << agent.log();
}

}  // namespace
}  // namespace mtls::test
