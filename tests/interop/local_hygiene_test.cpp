// Local sockets, state and secrets against careless or hostile neighbours on the host
// (issue #16 item 8), with the real agent: a live proxy Unix socket is never taken over; the
// state directory must be the agent's own real directory; other processes of the same uid
// cannot read the agent's memory (PR_SET_DUMPABLE 0, no core dumps: they would hold live
// access tokens); a PIN given in the environment is gone from it once read.
#include "tests/support/agent_world.hpp"

#include <gtest/gtest.h>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <sstream>

namespace {

using namespace mtls::test;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

// A process that is serving a Unix socket (here: the test itself, listening).
struct LiveSocket {
    explicit LiveSocket(const fs::path& path) {
        fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un a{};
        a.sun_family = AF_UNIX;
        std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
        ok = fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
             ::listen(fd, 8) == 0;
    }
    ~LiveSocket() {
        if (fd >= 0) ::close(fd);
    }
    int fd = -1;
    bool ok = false;
};

std::string with_in_section(std::string cfg, const std::string& section, const std::string& line) {
    auto at = cfg.find(section + "\n");
    if (at != std::string::npos) cfg.insert(at + section.size() + 1, line + "\n");
    return cfg;
}

std::string replace_line(std::string cfg, const std::string& key, const std::string& line) {
    auto at = cfg.find("\n" + key + " = ");
    if (at == std::string::npos) return cfg;
    auto end = cfg.find('\n', at + 1);
    cfg.replace(at + 1, end - at - 1, line);
    return cfg;
}

std::string slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

TEST(LocalHygiene, ALiveProxySocketIsNeverTakenOver) {
    AgentWorld w{"hygiene-sock"};
    const fs::path sock = w.dir.path() / "proxy.sock";
    LiveSocket other(sock);
    ASSERT_TRUE(other.ok) << std::strerror(errno);
    w.agent->write_config(with_in_section(w.agent->config_text(), "[listener]",
                                          "unix_socket = \"" + sock.string() + "\""));
    w.agent->start();
    auto rc = w.agent->wait_exit(60s);
    ASSERT_TRUE(rc.has_value()) << "the agent started on a socket another process serves:\n"
                                << w.agent->log();
    EXPECT_NE(*rc, 0);
    EXPECT_NE(w.agent->log().find("another process is listening on " + sock.string()),
              std::string::npos)
        << w.agent->log();
    struct stat st {};
    ASSERT_EQ(::lstat(sock.c_str(), &st), 0) << "the live socket's path was removed";
    // Still the other process's socket: a connection reaches its backlog.
    int c = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, sock.c_str(), sizeof a.sun_path - 1);
    EXPECT_EQ(::connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    ::close(c);

    // A stale socket (nobody serving it) is replaced, and the agent serves it.
    ::close(other.fd);
    other.fd = -1;
    w.agent->start();
    w.agent->wait_healthy();
    auto r = run_command({"curl", "-sS", "--max-time", "30", "--unix-socket", sock.string(),
                          "http://localhost/partner/api/secure/data"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("\"client_certificate\""), std::string::npos) << r.out;
}

TEST(LocalHygiene, StateDirMustBeTheAgentsOwnRealDirectory) {
    AgentWorld w{"hygiene-state"};
    const fs::path state = w.dir.path() / "state";
    const fs::path elsewhere = w.dir.path() / "elsewhere";
    fs::create_directories(elsewhere);

    // A symbolic link in its place: refused, nothing written through it.
    fs::create_directory_symlink(elsewhere, state);
    w.agent->start();
    auto rc = w.agent->wait_exit(60s);
    ASSERT_TRUE(rc.has_value()) << "the agent used a symlinked state_dir:\n" << w.agent->log();
    EXPECT_NE(*rc, 0);
    EXPECT_NE(w.agent->log().find("is a symbolic link"), std::string::npos) << w.agent->log();
    EXPECT_TRUE(fs::is_empty(elsewhere));
    fs::remove(state);

    // Owned by another user (nobody): refused.
    fs::create_directories(state);
    ASSERT_EQ(::chown(state.c_str(), 65534, 65534), 0) << std::strerror(errno);
    w.agent->start();
    rc = w.agent->wait_exit(60s);
    ASSERT_TRUE(rc.has_value()) << "the agent used a state_dir owned by uid 65534:\n"
                                << w.agent->log();
    EXPECT_NE(*rc, 0);
    EXPECT_NE(w.agent->log().find("owned by uid 65534"), std::string::npos) << w.agent->log();
    EXPECT_FALSE(fs::exists(state / "identity.json"));

    ASSERT_EQ(::chown(state.c_str(), ::geteuid(), ::getegid()), 0);
    w.agent->start();
    w.agent->wait_healthy();
}

// `localhost:PORT` passes --check-config, so the agent must start with it too (it is
// 127.0.0.1:PORT; names are not resolved), and the same socket twice is a config error.
TEST(LocalHygiene, LocalhostListenAddressMeansWhatCheckConfigSays) {
    AgentWorld w{"hygiene-localhost"};
    const std::string port = std::to_string(w.agent->port());
    std::string cfg = w.agent->config_text();
    cfg = replace_line(cfg, "addresses", "addresses = [\"localhost:" + port + "\"]");
    w.agent->write_config(cfg);
    auto check = run_command({AgentProcess::agent_binary().string(), "--check-config", "--config",
                              w.agent->config_path().string()});
    ASSERT_EQ(check.exit_code, 0) << check.out << check.err;
    w.agent->start();
    w.agent->wait_healthy();
    EXPECT_TRUE(w.call().contains("client_certificate"));
    ASSERT_EQ(w.agent->stop(), 0);

    w.agent->write_config(replace_line(
        cfg, "addresses", "addresses = [\"localhost:" + port + "\", \"127.0.0.1:" + port + "\"]"));
    check = run_command({AgentProcess::agent_binary().string(), "--check-config", "--config",
                         w.agent->config_path().string()});
    EXPECT_NE(check.exit_code, 0);
    EXPECT_NE((check.out + check.err).find("duplicate address"), std::string::npos)
        << check.out << check.err;
}

// Every capability dropped, for the agent and for the neighbour reading it: two processes
// of uid 0 that differ only in the agent's PR_SET_DUMPABLE (with CAP_SYS_PTRACE, or more
// capabilities than the agent, root reads any process's memory anyway).
const std::vector<std::string> kNoCapabilities = {
    "setpriv", "--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all", "--"};

TEST(LocalHygiene, MemoryAndEnvironmentKeepTheSecrets) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (setpriv --bounding-set)";
    AgentSetup setup;
    setup.launcher = kNoCapabilities;
    AgentWorld w{"hygiene-mem", {}, setup};
    const std::string pin = w.token.read_pin();
    ASSERT_FALSE(pin.empty());
    w.agent->write_config(
        replace_line(w.agent->config_text(), "pin_file", "pin_env = \"MTLS_HYGIENE_PIN\""));
    w.agent->start({{"MTLS_HYGIENE_PIN", pin}});
    w.agent->wait_healthy();
    EXPECT_TRUE(w.call().contains("client_certificate"));

    // The PIN is not in the agent's environment any more (root with CAP_SYS_PTRACE, as this
    // test runs, may still read that).
    const fs::path proc = "/proc/" + std::to_string(w.agent->pid());
    auto environ_text = slurp(proc / "environ");
    ASSERT_FALSE(environ_text.empty());
    EXPECT_EQ(environ_text.find(pin), std::string::npos) << "the PIN is still in /proc/PID/environ";
    // (The variable's name stays in that initial block; its value is wiped in place.)

    // Not dumpable: another process of the same uid cannot read its memory maps or
    // environment.
    for (const char* file : {"environ", "maps"}) {
        auto argv = kNoCapabilities;
        argv.push_back("cat");
        argv.push_back((proc / file).string());
        auto r = run_command(argv);
        EXPECT_NE(r.exit_code, 0) << file << " was readable by another process:\n"
                                  << r.out.substr(0, 200);
    }
    // The PIN was kept, not lost: a rotation generates a key on a logged-in session.
    auto rot = w.agent->ctl({"rotate", "--wait"});
    EXPECT_EQ(rot.exit_code, 0) << rot.out << rot.err;
}

}  // namespace
