// write_export(): what an agent that may not chown is told, and what it leaves behind.
#include "agent/export/export_files.hpp"
#include "tests/support/temp_dir.hpp"

#include <grp.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>

namespace mtls::test {
namespace {

namespace fs = std::filesystem;

// Runs `body` in a child process as uid/gid 65534 (nobody) and returns what it wrote to the
// pipe (its error message).
std::string as_nobody(const std::function<std::string()>& body) {
    int p[2];
    if (::pipe(p) != 0) return "pipe failed";
    pid_t pid = ::fork();
    if (pid == 0) {
        ::close(p[0]);
        std::string out = "cannot drop privileges";
        if (::setgroups(0, nullptr) == 0 && ::setresgid(65534, 65534, 65534) == 0 &&
            ::setresuid(65534, 65534, 65534) == 0)
            out = body();
        (void)!::write(p[1], out.data(), out.size());
        ::_exit(0);
    }
    ::close(p[1]);
    std::string out;
    char buf[4096];
    for (ssize_t n; (n = ::read(p[0], buf, sizeof buf)) > 0;) out.append(buf, std::size_t(n));
    ::close(p[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    return out;
}

TEST(ExportFiles, AnAgentThatMayNotChownIsToldWhatToDoAndLeavesNothing) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to become another user";
    TempDir dir("export-chown");
    const auto out = dir / "out";
    fs::create_directory(out);
    ASSERT_EQ(::chown(out.c_str(), 65534, 65534), 0);
    ::chmod(dir.path().c_str(), 0755);
    config::Export x;
    x.cert = (out / "cert.pem").string();
    x.owner = "0";
    const certexport::ExportFile f{"cert", x.cert, "pem"};
    const std::string message = as_nobody([&]() -> std::string {
        try {
            certexport::write_export(f, x, files::FileOwner{0, static_cast<gid_t>(-1)});
            return "written";
        } catch (const std::exception& e) {
            return e.what();
        }
    });
    EXPECT_EQ(message,
              "export.cert: cannot give " + x.cert +
                  " to owner 0: the agent runs as uid 65534, which may not (only root "
                  "gives files to another user, and others set only a group they belong "
                  "to); run the agent as root, or drop export.owner and set export.group "
                  "to a group of the agent's user (e.g. SupplementaryGroups= in the unit)");
    EXPECT_TRUE(fs::is_empty(out)) << "no file, no temporary file";

    // The same agent may write without an owner.
    const std::string plain = as_nobody([&]() -> std::string {
        try {
            certexport::write_export(f, x, files::FileOwner{});
            return "written";
        } catch (const std::exception& e) {
            return e.what();
        }
    });
    EXPECT_EQ(plain, "written");
    struct stat st {};
    ASSERT_EQ(::stat(x.cert.c_str(), &st), 0);
    EXPECT_EQ(st.st_uid, 65534u);
    EXPECT_EQ(st.st_mode & 07777, 0644u);
}

TEST(ExportFiles, AMissingDirectoryIsNamed) {
    TempDir dir("export-missing");
    config::Export x;
    const certexport::ExportFile f{"fullchain", (dir / "gone" / "fullchain.pem").string(), "pem"};
    try {
        certexport::write_export(f, x, files::FileOwner{});
        ADD_FAILURE() << "written";
    } catch (const std::exception& e) {
        EXPECT_EQ(std::string(e.what()), "export.fullchain: directory \"" +
                                             (dir / "gone").string() +
                                             "\" cannot be used: No such file or directory "
                                             "(create it, e.g. install -d -m 0755 " +
                                             (dir / "gone").string() + ")");
    }
}

}  // namespace
}  // namespace mtls::test
