#include "common/atomic_file.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace fs = std::filesystem;

namespace {
fs::path temp_dir() {
    char tmpl[] = "/tmp/mtls-atomic-XXXXXX";
    return fs::path(mkdtemp(tmpl));
}
}  // namespace

TEST(AtomicFile, WritesWithModeAndReplaces) {
    auto dir = temp_dir();
    auto p = dir / "state.json";
    mtls::files::write_atomic(p, "one", 0600);
    EXPECT_EQ(mtls::files::read_all(p), "one");
    struct stat st {};
    ASSERT_EQ(stat(p.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    mtls::files::write_atomic(p, "two", 0600);
    EXPECT_EQ(mtls::files::read_all(p), "two");
    // no temporary files left behind
    int n = 0;
    for ([[maybe_unused]] auto& e : fs::directory_iterator(dir)) ++n;
    EXPECT_EQ(n, 1);
    fs::remove_all(dir);
}

TEST(AtomicFile, ReadAllRefusesHugeAndMissing) {
    auto dir = temp_dir();
    auto p = dir / "big";
    mtls::files::write_atomic(p, std::string(100, 'x'));
    EXPECT_THROW(mtls::files::read_all(p, 10), std::length_error);
    EXPECT_THROW(mtls::files::read_all(dir / "missing"), std::system_error);
    fs::remove_all(dir);
}

TEST(AtomicFile, OwnerAndModeAreSetBeforeTheFileAppears) {
    if (::geteuid() != 0) GTEST_SKIP() << "only root gives files to another user";
    auto dir = temp_dir();
    auto p = dir / "cert.pem";
    mtls::files::write_atomic(p, "pem", 0640, mtls::files::FileOwner{65534, 65534});
    struct stat st {};
    ASSERT_EQ(stat(p.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0640u);
    EXPECT_EQ(st.st_uid, 65534u);
    EXPECT_EQ(st.st_gid, 65534u);
    // Only the group.
    mtls::files::write_atomic(p, "pem2", 0644, mtls::files::FileOwner{static_cast<uid_t>(-1), 0});
    ASSERT_EQ(stat(p.c_str(), &st), 0);
    EXPECT_EQ(st.st_uid, 0u);
    EXPECT_EQ(st.st_gid, 0u);
    EXPECT_EQ(mtls::files::read_all(p), "pem2");
    fs::remove_all(dir);
}

TEST(AtomicFile, AFailedWriteLeavesNoTemporaryFile) {
    auto dir = temp_dir();
    // Renaming a file over a non-empty directory fails after the temporary file was written.
    fs::create_directory(dir / "taken");
    std::ofstream(dir / "taken" / "x") << "x";
    EXPECT_THROW(mtls::files::write_atomic(dir / "taken", "data", 0644), std::system_error);
    int n = 0;
    for ([[maybe_unused]] auto& e : fs::directory_iterator(dir)) ++n;
    EXPECT_EQ(n, 1) << "only the directory";
    fs::remove_all(dir);
}
