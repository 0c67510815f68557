// Test support for the Debian package (tests/package/): build the .deb of this build, install
// it on this machine with dpkg, and take it off again leaving the machine as it was.
//
//   TEST_F(InstalledPackageTest, AgentRunsAsItsUser) {   // root, dpkg; purged afterwards
//       install_deb(build_deb());
//       auto r = mtls::test::run({"runuser", "-u", "mtls-agent", "--", "/usr/bin/mtls-agent", …});
//   }
//
// Tests using these must run one at a time: ctest RESOURCE_LOCK dpkg (tests/package/CMakeLists.txt
// gives every test of package_tests that lock, and the fixture "package_deb").
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

namespace mtls::test::package {

// The .deb of this build. Under ctest, the one the setup test package.build_deb made
// ($MTLS_TEST_DEB_DIR); otherwise cpack builds one into a temporary directory, once per
// process. Throws std::runtime_error (with cpack's output) when that fails.
std::filesystem::path build_deb();

// `dpkg -i deb`; throws std::runtime_error with dpkg's output when it fails. The first call in
// a process records which of the package's accounts (user mtls-agent, groups mtls-agent,
// mtls-admin, softhsm) exist, for purge().
void install_deb(const std::filesystem::path& deb);

// `dpkg --purge mtls-agent` when it is installed (or half-installed), then deletes the accounts
// the package's sysusers.d created during this process — Debian's purge keeps them, a test
// machine should not. Never throws; returns dpkg's output (empty when nothing was installed).
std::string purge();

// Why package tests cannot run here ("" when they can): not root, or dpkg missing.
std::string cannot_run_reason();

// Files (not directories) in a .deb, as absolute paths ("/usr/bin/mtls-agent"), sorted.
std::vector<std::string> deb_files(const std::filesystem::path& deb);

// A copy of `deb` with another Version (e.g. "0.1.0-2", for an upgrade), in `dir`.
std::filesystem::path deb_with_version(const std::filesystem::path& deb,
                                       const std::filesystem::path& dir,
                                       const std::string& version);

// The whole content of a file ("" when it cannot be read).
std::string read_file(const std::filesystem::path& p);

// Base fixture: skipped unless root with dpkg; purges before (a leftover of a crashed run) and
// after every test, whatever its outcome.
class InstalledPackageTest : public ::testing::Test {
  protected:
    void SetUp() override;
    void TearDown() override;
};

}  // namespace mtls::test::package
