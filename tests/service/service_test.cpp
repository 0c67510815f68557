// The agent as a systemd service (issue #17): what it tells the service manager through
// NOTIFY_SOCKET (READY=1, STATUS=, WATCHDOG=1, RELOADING=1, STOPPING=1), the graceful stop
// (listener.drain_timeout, a second SIGTERM), `--check-config --quiet`, and the admin group.
// Real binaries, a SoftHSM2 token and the partner sandbox; the notify socket is ours
// (tests/support/notify_socket.hpp).
#include "tests/support/agent_process.hpp"
#include "tests/support/agent_world.hpp"
#include "tests/support/notify_socket.hpp"
#include "tests/support/poll.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <ctime>
#include <fstream>
#include <future>
#include <string>
#include <vector>

namespace {

using namespace mtls::test;
using namespace std::chrono_literals;
using nlohmann::json;
using Steady = std::chrono::steady_clock;

bool starts_with(const std::string& s, const std::string& prefix) {
    return s.rfind(prefix, 0) == 0;
}

auto line_is(const std::string& want) {
    return [want](const std::string& l) { return l == want; };
}

auto line_starts(const std::string& prefix) {
    return [prefix](const std::string& l) { return starts_with(l, prefix); };
}

std::string joined(const std::vector<std::string>& lines) {
    std::string out;
    for (const auto& l : lines) out += "  " + l + "\n";
    return out;
}

// Is something accepting TCP connections on 127.0.0.1:port?
bool accepts(std::uint16_t port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ::close(fd);
    return ok;
}

// One agent with a notify socket, started and (unless told otherwise) ready.
struct ServiceWorld {
    explicit ServiceWorld(const std::string& name, AgentSetup setup = {})
        : w(name, {}, std::move(setup)), notify(w.dir.path() / "notify.sock") {}

    void start(std::map<std::string, std::string> env = {}) {
        env["NOTIFY_SOCKET"] = notify.path().string();
        w.agent->start(env);
    }
    void start_ready(std::map<std::string, std::string> env = {}) {
        start(std::move(env));
        ASSERT_TRUE(notify.wait_for(line_is("READY=1"), 30s))
            << joined(notify.lines()) << w.agent->log();
    }
    // Waits until the sandbox has received `n` echo requests (the slow one is in flight).
    void wait_echo_requests(int n) {
        ASSERT_TRUE(poll_until([&] { return w.sandbox->stats()["echo_requests"].get<int>() >= n; },
                               10s, 20ms))
            << "the slow request never reached the partner\n"
            << w.agent->log();
    }
    void signal(int sig) { ASSERT_EQ(::kill(w.agent->pid(), sig), 0); }

    AgentWorld w;
    NotifySocket notify;
};

// READY=1 waits for an identity (EST failing at start: STATUS says enrolling, then failing,
// and no READY=1); once EST works, READY=1 and STATUS=serving. Then STATUS follows health:
// a failed renewal makes it "degraded: …", a good one "serving" again.
TEST(Service, ReadyWaitsForAnIdentityAndStatusFollowsHealth) {
    AgentSetup setup;
    setup.renewal = "backoff_initial = \"1s\"\nbackoff_max = \"2s\"\n";
    ServiceWorld s("svc-status", setup);
    s.w.sandbox->set_mode("est=500");
    s.start();
    auto& n = s.notify;
    ASSERT_TRUE(n.wait_for(line_is("STATUS=enrolling"), 30s)) << joined(n.lines());
    auto failing = n.wait_for(line_starts("STATUS=failing: "), 30s);
    ASSERT_TRUE(failing) << joined(n.lines()) << s.w.agent->log();
    EXPECT_NE(failing->find("no client certificate"), std::string::npos) << *failing;
    {
        auto all = n.lines();
        EXPECT_EQ(std::count(all.begin(), all.end(), "READY=1"), 0)
            << "READY=1 before any identity:\n"
            << joined(all);
    }

    s.w.sandbox->set_mode("est=normal");
    ASSERT_TRUE(n.wait_for(line_is("READY=1"), 30s)) << joined(n.lines()) << s.w.agent->log();
    ASSERT_TRUE(s.w.agent->status().has_value());
    EXPECT_TRUE(n.wait_for(line_is("STATUS=serving"), 5s)) << joined(n.lines());

    // EST fails: a renewal fails, the agent serves on with its certificate and says degraded.
    s.w.sandbox->set_mode("est=500");
    auto failed = s.w.agent->ctl({"renew", "--wait"});
    EXPECT_NE(failed.exit_code, 0) << failed.out << failed.err;
    auto degraded = n.wait_for(line_starts("STATUS=degraded: "), 5s);
    ASSERT_TRUE(degraded) << joined(n.lines());
    EXPECT_NE(degraded->find("renewal failed"), std::string::npos) << *degraded;
    EXPECT_NE(degraded->find("500"), std::string::npos) << *degraded;

    // EST is back: renewed, serving again; READY=1 was sent once only.
    s.w.sandbox->set_mode("est=normal");
    auto ok = s.w.agent->ctl({"renew", "--wait"});
    EXPECT_EQ(ok.exit_code, 0) << ok.out << ok.err;
    EXPECT_TRUE(n.wait_for(line_is("STATUS=serving"), 5s)) << joined(n.lines());
    auto all = n.lines();
    EXPECT_EQ(std::count(all.begin(), all.end(), "READY=1"), 1) << joined(all);
    // Sent on change only: no two equal STATUS= lines in a row.
    std::string last;
    for (const auto& l : all) {
        if (!starts_with(l, "STATUS=")) continue;
        EXPECT_NE(l, last) << joined(all);
        last = l;
    }
}

// WATCHDOG_USEC=1 s: pings come from the loop at about half of it, repeatedly. A reload
// (SIGHUP, then the admin command) is RELOADING=1 with MONOTONIC_USEC=<now>, then READY=1.
TEST(Service, WatchdogPingsAndReloadNotifications) {
    ServiceWorld s("svc-reload");
    s.start_ready({{"WATCHDOG_USEC", "1000000"}});
    auto& n = s.notify;
    const auto t0 = Steady::now();
    for (int i = 0; i < 4; ++i)
        ASSERT_TRUE(n.wait_for(line_is("WATCHDOG=1"), 3s)) << "ping " << i << joined(n.lines());
    // Four pings at ~0.5 s: not a burst, not late.
    EXPECT_GE(Steady::now() - t0, 1000ms);
    EXPECT_LE(Steady::now() - t0, 4000ms);

    auto monotonic_now_usec = [] {
        timespec ts{};
        ::clock_gettime(CLOCK_MONOTONIC, &ts);
        return static_cast<long long>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
    };
    auto expect_reload = [&](const std::string& how, long long before) {
        ASSERT_TRUE(n.wait_for(line_is("RELOADING=1"), 10s)) << how << joined(n.lines());
        auto mono = n.wait_for(line_starts("MONOTONIC_USEC="), 1s);
        ASSERT_TRUE(mono) << how << joined(n.lines());
        const long long usec = std::stoll(mono->substr(15));
        EXPECT_GE(usec, before) << how << ": CLOCK_MONOTONIC in µs, taken at the reload";
        EXPECT_LE(usec, monotonic_now_usec()) << how;
        EXPECT_TRUE(n.wait_for(line_is("READY=1"), 10s)) << how << joined(n.lines());
    };
    auto before = monotonic_now_usec();
    s.signal(SIGHUP);
    expect_reload("SIGHUP", before);
    before = monotonic_now_usec();
    auto r = s.w.agent->ctl({"reload"});
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    expect_reload("mtls-agentctl reload", before);
    // Still pinging after the reloads.
    EXPECT_TRUE(n.wait_for(line_is("WATCHDOG=1"), 3s)) << joined(n.lines());
}

// SIGTERM while a request is in flight: STOPPING=1, no new connections, the request
// finishes with 200, the agent exits 0.
TEST(Service, SigtermDrainsTheRequestInFlight) {
    ServiceWorld s("svc-drain");
    s.start_ready();
    auto slow = call_async(*s.w.agent, "echo/slow/3000");
    s.wait_echo_requests(1);
    const auto t0 = Steady::now();
    s.signal(SIGTERM);
    ASSERT_TRUE(s.notify.wait_for(line_is("STOPPING=1"), 5s)) << joined(s.notify.lines());
    EXPECT_TRUE(poll_until([&] { return !accepts(s.w.agent->port()); }, 5s, 10ms))
        << "the proxy still accepts connections while draining";
    EXPECT_TRUE(s.w.agent->running()) << "exited before the request finished\n" << s.w.agent->log();

    auto r = slow.get();
    EXPECT_EQ(http_status(r), "200") << r.out << r.err << s.w.agent->log();
    EXPECT_NE(r.out.find("\"slept_ms\":3000"), std::string::npos) << r.out;
    auto rc = s.w.agent->wait_exit(10s);
    ASSERT_TRUE(rc) << "still running after the drain\n" << s.w.agent->log();
    EXPECT_EQ(*rc, 0) << s.w.agent->log();
    EXPECT_LT(Steady::now() - t0, 8s);
    const auto log = s.w.agent->log();
    EXPECT_NE(log.find("agent.draining"), std::string::npos) << log;
    EXPECT_NE(log.find("in_flight=1"), std::string::npos) << log;
    EXPECT_NE(log.find("agent.stopped"), std::string::npos) << log;
    EXPECT_EQ(log.find("agent.drain_timeout"), std::string::npos) << log;
}

// listener.drain_timeout = 1s and a 10 s request: cut after the timeout, exit 0 soon after.
TEST(Service, DrainTimeoutCutsWhatRemains) {
    AgentSetup setup;
    setup.listener = "drain_timeout = \"1s\"\n";
    ServiceWorld s("svc-drain-timeout", setup);
    s.start_ready();
    auto slow = call_async(*s.w.agent, "echo/slow/10000");
    s.wait_echo_requests(1);
    const auto t0 = Steady::now();
    s.signal(SIGTERM);
    auto rc = s.w.agent->wait_exit(6s);
    const auto took = Steady::now() - t0;
    ASSERT_TRUE(rc) << "still running 6 s after SIGTERM with drain_timeout = 1s\n"
                    << s.w.agent->log();
    EXPECT_EQ(*rc, 0) << s.w.agent->log();
    EXPECT_GE(took, 900ms) << "did not wait for the drain timeout";
    auto r = slow.get();
    EXPECT_NE(http_status(r), "200") << "the request should have been cut: " << r.out;
    const auto log = s.w.agent->log();
    EXPECT_NE(log.find("agent.drain_timeout"), std::string::npos) << log;
    EXPECT_NE(log.find("cut=1"), std::string::npos) << log;
    EXPECT_NE(log.find("agent.stopped"), std::string::npos) << log;
}

// A second SIGTERM while draining cuts at once (drain_timeout is the default 30 s).
TEST(Service, SecondSigtermCutsAtOnce) {
    ServiceWorld s("svc-drain-twice");
    s.start_ready();
    auto slow = call_async(*s.w.agent, "echo/slow/10000");
    s.wait_echo_requests(1);
    s.signal(SIGTERM);
    ASSERT_TRUE(s.notify.wait_for(line_is("STOPPING=1"), 5s)) << joined(s.notify.lines());
    ASSERT_TRUE(poll_until(
        [&] { return s.w.agent->log().find("agent.draining") != std::string::npos; }, 5s, 10ms))
        << s.w.agent->log();
    // Draining, not gone: the request holds it.
    EXPECT_FALSE(s.w.agent->wait_exit(300ms)) << s.w.agent->log();
    const auto t0 = Steady::now();
    s.signal(SIGTERM);
    auto rc = s.w.agent->wait_exit(5s);
    ASSERT_TRUE(rc) << "a second SIGTERM did not stop it\n" << s.w.agent->log();
    EXPECT_EQ(*rc, 0) << s.w.agent->log();
    EXPECT_LT(Steady::now() - t0, 3s);
    auto r = slow.get();
    EXPECT_NE(http_status(r), "200") << r.out;
    const auto log = s.w.agent->log();
    EXPECT_NE(log.find("agent.drain_cut"), std::string::npos) << log;
    EXPECT_NE(log.find("cut=1"), std::string::npos) << log;
}

// --check-config --quiet: nothing at all on a valid config, the errors on an invalid one;
// -q alone is a usage error. drain_timeout is validated and shown like the other durations.
TEST(Service, CheckConfigQuiet) {
    AgentWorld w("svc-check");
    const auto bin = AgentProcess::agent_binary().string();
    const auto cfg = w.agent->config_path().string();
    auto quiet = run_command({bin, "--check-config", "--quiet", "-c", cfg});
    EXPECT_EQ(quiet.exit_code, 0) << quiet.err;
    EXPECT_EQ(quiet.out, "");
    EXPECT_EQ(quiet.err, "");
    auto q = run_command({bin, "--check-config", "-q", "-c", cfg});
    EXPECT_EQ(q.exit_code, 0) << q.err;
    EXPECT_EQ(q.out, "");
    auto loud = run_command({bin, "--check-config", "-c", cfg});
    EXPECT_EQ(loud.exit_code, 0) << loud.err;
    EXPECT_NE(loud.out.find("drain_timeout = \"30s\""), std::string::npos) << loud.out;

    auto text = w.agent->config_text();
    auto at = text.find("[listener]\n");
    ASSERT_NE(at, std::string::npos);
    text.insert(at + 11, "drain_timeout = \"soon\"\n");
    w.agent->write_config(text);
    auto bad = run_command({bin, "--check-config", "-q", "-c", cfg});
    EXPECT_EQ(bad.exit_code, 1);
    EXPECT_EQ(bad.out, "");
    EXPECT_NE(bad.err.find("mtls-agent.toml:"), std::string::npos) << bad.err;
    EXPECT_NE(bad.err.find(": listener.drain_timeout: \"soon\" is not a duration"),
              std::string::npos)
        << bad.err;

    auto usage = run_command({bin, "-q", "-c", cfg});
    EXPECT_EQ(usage.exit_code, 2) << usage.out << usage.err;
}

// The admin group: a group made for the test, set as [admin] group. The socket is created
// 0660 with that group; a uid that has the group (as a supplementary group) is served, one
// that has not is refused with exit 4 and a message naming the group.
TEST(Service, AdminGroupMembersMayUseTheSocket) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to create a group and switch uids";
    const std::string group = "mtls-svc-test";
    bool created = false;
    if (run_command({"getent", "group", group}).exit_code != 0) {
        auto add = run_command({"groupadd", "--system", group});
        ASSERT_EQ(add.exit_code, 0) << add.err;
        created = true;
    }
    struct GroupDel {
        std::string name;
        bool created;
        ~GroupDel() {
            if (created) run_command({"groupdel", name});
        }
    } group_del{group, created};
    auto ent = run_command({"getent", "group", group});
    ASSERT_EQ(ent.exit_code, 0);
    const auto gid = std::stoul(ent.out.substr(ent.out.find(':', ent.out.find(':') + 1) + 1));

    AgentSetup setup;
    setup.admin = "group = \"" + group + "\"\n";
    AgentWorld w("svc-admin-group", {}, setup);
    w.agent->start();
    w.agent->wait_healthy(30s);
    struct stat st {};
    ASSERT_EQ(::stat(w.agent->socket_path().c_str(), &st), 0);
    EXPECT_EQ(st.st_gid, gid) << "the socket has the admin group";
    EXPECT_EQ(st.st_mode & 0777, 0660u);
    // Other users must reach the socket's directory (the test directory is private).
    std::filesystem::permissions(w.dir.path(), std::filesystem::perms::owner_all |
                                                   std::filesystem::perms::others_exec |
                                                   std::filesystem::perms::group_exec);
    auto probe = run_command({"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                              AgentProcess::ctl_binary().string(), "--help"});
    if (probe.exit_code != 0) GTEST_SKIP() << "uid 65534 cannot run the build: " << probe.err;

    auto member =
        run_command({"setpriv", "--reuid=65533", "--regid=65533", "--groups=" + std::to_string(gid),
                     AgentProcess::ctl_binary().string(), "--socket",
                     w.agent->socket_path().string(), "status"});
    EXPECT_EQ(member.exit_code, 0) << member.out << member.err << w.agent->log();
    EXPECT_NE(member.out.find("healthy"), std::string::npos) << member.out;

    auto outsider = run_command({"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                 AgentProcess::ctl_binary().string(), "--socket",
                                 w.agent->socket_path().string(), "status"});
    EXPECT_EQ(outsider.exit_code, 4) << outsider.out << outsider.err;
    EXPECT_NE(outsider.err.find("refused: " + w.agent->socket_path().string() +
                                ": only root, the agent's user and members of group " + group +
                                " may use the admin socket (usermod -aG " + group),
              std::string::npos)
        << outsider.err;
}

}  // namespace
