#include "common/atomic_file.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>

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
    struct stat st{};
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
