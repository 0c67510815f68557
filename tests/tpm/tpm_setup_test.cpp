// softhsm-setup/tpm-setup.sh itself: everything under its directory and private, the token
// usable through the module, a second run reuses what runs, --stop leaves nothing running.
#include "tests/support/poll.hpp"
#include "tests/support/softhsm_token.hpp"
#include "tests/support/subprocess.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

namespace {

using namespace mtls::test;
using namespace std::chrono_literals;

pid_t pid_in(const std::filesystem::path& file) {
    std::ifstream in(file);
    pid_t pid = 0;
    in >> pid;
    return pid;
}

// Running, and not a zombie (a daemon's parent is init here, which may not reap it at once).
bool alive(pid_t pid) {
    if (pid <= 0 || ::kill(pid, 0) != 0) return false;
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    std::getline(stat, line);
    const auto close = line.rfind(')');
    return close == std::string::npos || close + 2 >= line.size() || line[close + 2] != 'Z';
}

unsigned mode_of(const std::filesystem::path& p) {
    struct stat st {};
    return ::stat(p.c_str(), &st) == 0 ? (st.st_mode & 07777) : 0;
}

TEST(TpmSetup, PrivateFilesReuseAndStopLeavesNothingRunning) {
    auto t = TempToken::create_tpm("setup-check");
    const auto dir = t.dir.path();
    const auto run_dir = dir / "run";
    EXPECT_EQ(mode_of(dir), 0700u);
    EXPECT_EQ(mode_of(t.pin_file), 0600u);
    EXPECT_EQ(mode_of(dir / "so-pin"), 0600u);
    EXPECT_EQ(mode_of(dir / "store"), 0700u);
    EXPECT_EQ(t.env.at("TPM2_PKCS11_TCTI"), "tabrmd:bus_type=session");
    EXPECT_EQ(t.env.at("TPM2_PKCS11_STORE"), (dir / "store").string());
    EXPECT_NE(t.env.at("DBUS_SESSION_BUS_ADDRESS").find((run_dir / "bus").string()),
              std::string::npos);
    EXPECT_EQ(pkcs11_uri_attribute(t.uri, "token"), "setup-check");
    EXPECT_TRUE(std::filesystem::exists(dir / "agent.toml.part"));

    const pid_t daemons[] = {pid_in(run_dir / "swtpm.pid"), pid_in(run_dir / "dbus.pid"),
                             pid_in(run_dir / "abrmd.pid")};
    for (pid_t p : daemons) EXPECT_TRUE(alive(p)) << p;

    // The PINs are on no command line of what it started.
    const std::string pin = t.read_pin();
    for (pid_t p : daemons) {
        std::ifstream cmdline("/proc/" + std::to_string(p) + "/cmdline");
        const std::string args((std::istreambuf_iterator<char>(cmdline)), {});
        EXPECT_EQ(args.find(pin), std::string::npos) << p;
    }

    // Run again while it runs: the same token, the same daemons.
    auto again = run({tpm_setup_script(), dir.string(), "--label", "setup-check"});
    ASSERT_EQ(again.exit_code, 0) << again.err;
    EXPECT_NE(again.out.find("MTLS_PKCS11_TOKEN_URI=" + t.uri), std::string::npos) << again.out;
    EXPECT_EQ(pid_in(run_dir / "swtpm.pid"), daemons[0]);

    auto stop = run({tpm_setup_script(), dir.string(), "--stop"});
    EXPECT_EQ(stop.exit_code, 0) << stop.err;
    for (pid_t p : daemons)
        EXPECT_TRUE(poll_until([&] { return !alive(p); }, 10s)) << "still running: " << p;
}

}  // namespace
