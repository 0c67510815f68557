// run_hook(): the on_renew command runs without a shell, with only the environment given,
// stdin /dev/null, no inherited descriptors, in "/", output captured and bounded; a command
// past its timeout is ended with its whole process group (SIGTERM, then SIGKILL).
#include "agent/export/hook_runner.hpp"
#include "tests/support/poll.hpp"
#include "tests/support/temp_dir.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <thread>

namespace mtls::test {
namespace {

using certexport::HookCommand;
using certexport::HookResult;
using certexport::run_hook;
using namespace std::chrono_literals;

HookCommand sh(const std::string& script, std::chrono::milliseconds timeout = 10s) {
    HookCommand c;
    c.argv = {"/bin/sh", "-c", script, "hook-name", "first arg"};
    c.env = {"PATH=/usr/bin:/bin", "MTLS_AGENT_SERIAL=0A1B"};
    c.timeout = timeout;
    return c;
}

// A process that no longer runs (gone, or a zombie nobody reaped yet).
bool gone(pid_t pid) {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string text;
    if (!std::getline(stat, text)) return true;
    auto close = text.rfind(')');
    return close != std::string::npos && text.size() > close + 2 && text[close + 2] == 'Z';
}

TEST(HookRunner, RunsWithOnlyTheGivenEnvironmentArgsAndDescriptors) {
    // A descriptor without O_CLOEXEC in this process must not reach the command.
    int leaked = ::open("/dev/null", O_RDONLY);
    ASSERT_GE(leaked, 3);
    ::setenv("MTLS_HOOK_TEST_SECRET", "do-not-pass", 1);
    auto r =
        run_hook(sh("echo \"args=$0|$1\"; env | sort; read x || echo stdin-eof; pwd; "
                    "ls /proc/self/fd | sort -n | tr '\\n' ' '; echo; echo to-stderr >&2"));
    ::close(leaked);
    ::unsetenv("MTLS_HOOK_TEST_SECRET");
    ASSERT_TRUE(r.ok()) << r.describe() << "\n" << r.output;
    EXPECT_EQ(r.describe(), "exit status 0");
    EXPECT_EQ(std::string(r.result_name()), "ok");
    EXPECT_NE(r.output.find("args=hook-name|first arg\n"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("MTLS_AGENT_SERIAL=0A1B\n"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("PATH=/usr/bin:/bin\n"), std::string::npos) << r.output;
    EXPECT_EQ(r.output.find("MTLS_HOOK_TEST_SECRET"), std::string::npos) << r.output;
    EXPECT_EQ(r.output.find("HOME="), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("stdin-eof\n/\n"), std::string::npos) << r.output;
    // 0-2, and the one `ls` opens to read the directory.
    EXPECT_NE(r.output.find("\n0 1 2 3 \n"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("to-stderr\n"), std::string::npos) << r.output;
}

TEST(HookRunner, ReportsExitStatusSignalAndWhatCannotStart) {
    auto failed = run_hook(sh("echo partial; exit 3"));
    EXPECT_EQ(failed.end, HookResult::End::exited);
    EXPECT_FALSE(failed.ok());
    EXPECT_EQ(failed.exit_code, 3);
    EXPECT_EQ(failed.describe(), "exit status 3");
    EXPECT_EQ(std::string(failed.result_name()), "failed");
    EXPECT_EQ(failed.output, "partial\n");

    auto killed = run_hook(sh("kill -KILL $$"));
    EXPECT_EQ(killed.end, HookResult::End::signaled);
    EXPECT_EQ(killed.signal, SIGKILL);
    EXPECT_EQ(killed.describe(), "killed by signal 9 (SIGKILL)");

    HookCommand missing;
    missing.argv = {"/nonexistent/hook"};
    auto none = run_hook(missing);
    EXPECT_EQ(none.end, HookResult::End::cannot_start);
    EXPECT_EQ(none.describe(), "cannot start /nonexistent/hook: No such file or directory");
    EXPECT_EQ(std::string(none.result_name()), "cannot_start");
}

TEST(HookRunner, TimeoutEndsTheWholeProcessGroup) {
    TempDir dir("hook-timeout");
    const auto pidfile = (dir / "child.pid").string();
    const auto started = std::chrono::steady_clock::now();
    // A background child of the command, in its process group, must go too.
    auto r = run_hook(sh("sleep 30 & echo $! > " + pidfile + "; echo started; wait", 300ms));
    const auto took = std::chrono::steady_clock::now() - started;
    EXPECT_EQ(r.end, HookResult::End::timed_out);
    EXPECT_EQ(r.describe(), "ran longer than on_renew_timeout (300ms) and was killed (SIGTERM)");
    EXPECT_EQ(std::string(r.result_name()), "timed_out");
    EXPECT_EQ(r.output, "started\n");
    EXPECT_LT(took, 3s);
    EXPECT_GE(took, 300ms);
    std::ifstream in(pidfile);
    pid_t child = 0;
    ASSERT_TRUE(in >> child);
    EXPECT_TRUE(poll_until([&] { return gone(child); }, 5s)) << "sleep " << child << " survived";
}

TEST(HookRunner, ACommandIgnoringSigtermGetsSigkill) {
    auto c = sh("trap '' TERM; echo trapped; while :; do sleep 1; done", 200ms);
    c.kill_grace = 300ms;
    const auto started = std::chrono::steady_clock::now();
    auto r = run_hook(c);
    const auto took = std::chrono::steady_clock::now() - started;
    EXPECT_EQ(r.end, HookResult::End::timed_out);
    EXPECT_EQ(r.describe(),
              "ran longer than on_renew_timeout (200ms) and was killed (SIGTERM, then SIGKILL)");
    EXPECT_GE(took, 500ms);
    EXPECT_LT(took, 3s);
}

TEST(HookRunner, OutputIsBoundedAndADescendantHoldingThePipeIsNotWaitedFor) {
    auto c = sh("head -c 100000 /dev/zero | tr '\\0' a");
    c.max_output = 1000;
    auto r = run_hook(c);
    EXPECT_TRUE(r.ok()) << r.describe();
    EXPECT_EQ(r.output, std::string(1000, 'a'));
    EXPECT_EQ(r.output_dropped, 99000u);

    // The command exits at once; its background child keeps stdout open for 30 s.
    TempDir dir("hook-bg");
    const auto pidfile = (dir / "bg.pid").string();
    const auto started = std::chrono::steady_clock::now();
    auto bg = run_hook(sh("sleep 30 & echo $! > " + pidfile + "; echo done"));
    EXPECT_LT(std::chrono::steady_clock::now() - started, 3s);
    EXPECT_TRUE(bg.ok()) << bg.describe();
    EXPECT_EQ(bg.output, "done\n");
    std::ifstream in(pidfile);
    pid_t child = 0;
    if (in >> child) ::kill(child, SIGKILL);
}

TEST(HookRunner, StopEndsTheCommand) {
    TempDir dir("hook-stop");
    const auto mark = dir / "running";
    std::stop_source stop;
    std::thread stopper([&] {
        poll_until([&] { return std::filesystem::exists(mark); }, 10s);
        stop.request_stop();
    });
    const auto started = std::chrono::steady_clock::now();
    auto r = run_hook(sh("touch " + mark.string() + "; sleep 30", 60s), stop.get_token());
    stopper.join();
    EXPECT_EQ(r.end, HookResult::End::stopped);
    EXPECT_EQ(std::string(r.result_name()), "stopped");
    EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
}

TEST(HookRunner, OutputLines) {
    EXPECT_EQ(certexport::output_lines("a\r\nb\n\nc"),
              (std::vector<std::string>{"a", "b", "", "c"}));
    EXPECT_EQ(certexport::output_lines(""), std::vector<std::string>{});
    EXPECT_EQ(certexport::output_lines("x\ny\nz\n", 2, 100), (std::vector<std::string>{"x", "y"}));
    EXPECT_EQ(certexport::output_lines(std::string(50, 'q'), 10, 8),
              std::vector<std::string>{std::string(8, 'q')});
}

}  // namespace
}  // namespace mtls::test
