// The Debian package (cmake/MtlsPackage.cmake) and `cmake --install` (cmake/MtlsInstall.cmake):
// what the .deb holds, lintian's verdict, and what dpkg does with it on this machine — install,
// systemd-analyze verify and security on the installed unit, upgrade keeping an edited
// conffile, purge leaving nothing. Every test leaves the machine as it found it.
#include "tests/package/package_fixture.hpp"
#include "tests/support/subprocess.hpp"
#include "tests/support/temp_dir.hpp"

#include <grp.h>
#include <gtest/gtest.h>
#include <pwd.h>
#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

namespace fs = std::filesystem;
using mtls::test::run;
using mtls::test::TempDir;
using namespace mtls::test::package;

namespace {

const std::string kUnit = "/lib/systemd/system/mtls-agent.service";
const std::string kConfig = "/etc/mtls-agent/mtls-agent.toml";

void append(const fs::path& p, const std::string& text) {
    std::ofstream(p, std::ios::app) << text;
}

struct Meta {
    unsigned mode = 0;
    std::string owner, group;
};
Meta meta(const fs::path& p) {
    struct stat st {};
    if (::stat(p.c_str(), &st) != 0) return {};
    Meta m;
    m.mode = st.st_mode & 07777;
    if (auto* pw = ::getpwuid(st.st_uid)) m.owner = pw->pw_name;
    if (auto* gr = ::getgrgid(st.st_gid)) m.group = gr->gr_name;
    return m;
}

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string l; std::getline(in, l);) out.push_back(l);
    return out;
}

// Every file and directory the package puts on a host, and their modes (tar -tv columns).
const std::set<std::string> kExpectedFiles = {
    "/etc/mtls-agent/mtls-agent.toml",
    "/lib/systemd/system/mtls-agent.service",
    "/usr/bin/mtls-agent",
    "/usr/bin/mtls-agentctl",
    "/usr/lib/sysusers.d/mtls-agent.conf",
    "/usr/lib/tmpfiles.d/mtls-agent.conf",
    "/usr/share/bash-completion/completions/mtls-agentctl",
    "/usr/share/doc/mtls-agent/README.md",
    "/usr/share/doc/mtls-agent/changelog.Debian.gz",
    "/usr/share/doc/mtls-agent/copyright",
    "/usr/share/doc/mtls-agent/examples/mtls-agent.toml",
    "/usr/share/doc/mtls-agent/examples/systemd/tpm.conf",
    "/usr/share/doc/mtls-agent/examples/systemd/usb-hsm.conf",
    "/usr/share/doc/mtls-agent/packaging.md",
    "/usr/share/lintian/overrides/mtls-agent",
    "/usr/share/man/man5/mtls-agent.toml.5.gz",
    "/usr/share/man/man8/mtls-agent.8.gz",
    "/usr/share/man/man8/mtls-agentctl.8.gz",
};

class PackageTest : public ::testing::Test {
  protected:
    void SetUp() override {
        if (auto why = cannot_run_reason(); !why.empty()) GTEST_SKIP() << why;
        deb = build_deb();
    }
    std::string field(const std::string& name) {
        auto r = run({"dpkg-deb", "-f", deb.string(), name});
        EXPECT_EQ(r.exit_code, 0) << r.err;
        while (!r.out.empty() && r.out.back() == '\n') r.out.pop_back();
        return r.out;
    }
    fs::path deb;
};

}  // namespace

TEST_F(PackageTest, NameVersionAndFileLayout) {
    std::string arch = run({"dpkg", "--print-architecture"}).out;
    arch.erase(arch.find_last_not_of('\n') + 1);
    EXPECT_EQ(deb.filename().string(), "mtls-agent_" MTLS_DEB_VERSION "_" + arch + ".deb");
    EXPECT_EQ(field("Package"), "mtls-agent");
    EXPECT_EQ(field("Version"), MTLS_DEB_VERSION);

    auto files = deb_files(deb);
    EXPECT_EQ(std::set<std::string>(files.begin(), files.end()), kExpectedFiles);

    // Modes and owners as tar records them; nothing under /usr/etc or /usr/local.
    auto tv = run({"bash", "-c", "set -o pipefail; dpkg-deb -c \"$1\"", "bash", deb.string()});
    ASSERT_EQ(tv.exit_code, 0) << tv.err;
    for (const auto& l : lines_of(tv.out)) {
        std::istringstream in(l);
        std::string perms, owner, size, date, time, path;
        in >> perms >> owner >> size >> date >> time >> path;
        SCOPED_TRACE(l);
        EXPECT_EQ(owner, "root/root");
        EXPECT_EQ(path.find("./usr/etc"), std::string::npos);
        EXPECT_EQ(path.find("./usr/local"), std::string::npos);
        if (perms[0] == 'd')
            EXPECT_EQ(perms, "drwxr-xr-x");
        else if (path.rfind("./usr/bin/", 0) == 0)
            EXPECT_EQ(perms, "-rwxr-xr-x");
        else
            EXPECT_EQ(perms, "-rw-r--r--");
    }
}

TEST_F(PackageTest, ConffilesAndMaintainerScripts) {
    TempDir dir("mtls-ctrl");
    auto r = run({"dpkg-deb", "-e", deb.string(), (dir / "DEBIAN").string()});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(read_file(dir / "DEBIAN" / "conffiles"), kConfig + "\n");
    for (const char* script : {"postinst", "prerm", "postrm"}) {
        SCOPED_TRACE(script);
        EXPECT_EQ(meta(dir / "DEBIAN" / script).mode, 0755u);
        auto sh = run({"sh", "-n", (dir / "DEBIAN" / script).string()});
        EXPECT_EQ(sh.exit_code, 0) << sh.err;  // parses
    }
    const std::string postinst = read_file(dir / "DEBIAN" / "postinst");
    for (const char* expected : {"systemd-sysusers", "systemd-tmpfiles --create",
                                 "deb-systemd-helper enable", "deb-systemd-invoke"})
        EXPECT_NE(postinst.find(expected), std::string::npos) << expected;
    EXPECT_NE(read_file(dir / "DEBIAN" / "postrm").find("deb-systemd-helper purge"),
              std::string::npos);
}

// Library dependencies come from dpkg-shlibdeps: every library the programs are linked with
// is provided by a package named in Depends.
TEST_F(PackageTest, DependsDerivedByShlibdeps) {
    const std::string depends = field("Depends");
    std::cout << "Depends: " << depends << "\n";
    std::set<std::string> libs;
    for (const char* bin : {MTLS_AGENT_BINARY, MTLS_AGENTCTL_BINARY}) {
        auto r = run({"readelf", "-d", bin});
        ASSERT_EQ(r.exit_code, 0) << r.err;
        std::regex needed(R"(\(NEEDED\)\s+Shared library: \[([^\]]+)\])");
        for (std::sregex_iterator it(r.out.begin(), r.out.end(), needed), end; it != end; ++it)
            libs.insert((*it)[1]);
    }
    ASSERT_GE(libs.size(), 5u);  // libssl, libcurl, libsystemd, libtomlplusplus, libstdc++ …
    std::string multiarch = run({"dpkg-architecture", "-qDEB_HOST_MULTIARCH"}).out;
    multiarch.erase(multiarch.find_last_not_of('\n') + 1);
    ASSERT_FALSE(multiarch.empty());
    for (const auto& lib : libs) {
        // "libc6:amd64: /lib/x86_64-linux-gnu/libm.so.6" (other architectures' copies too).
        auto s = run({"dpkg", "-S", "*/" + multiarch + "/" + lib});
        ASSERT_EQ(s.exit_code, 0) << lib << ": " << s.err;
        std::string pkg = s.out.substr(0, s.out.find(": "));
        pkg = pkg.substr(0, pkg.find(':'));
        bool listed = false;
        for (std::size_t at = depends.find(pkg); at != std::string::npos;
             at = depends.find(pkg, at + 1)) {
            const bool starts = at == 0 || depends.compare(at - 2, 2, ", ") == 0;
            const std::size_t end = at + pkg.size();
            const bool ends = end == depends.size() || depends[end] == ' ' || depends[end] == ',';
            listed = listed || (starts && ends);
        }
        EXPECT_TRUE(listed) << lib << " comes from " << pkg << ", not in Depends: " << depends;
    }
}

TEST_F(PackageTest, LintianReportsNoErrors) {
    auto r = run({"lintian", "--allow-root", "--no-tag-display-limit", deb.string()}, {},
                 std::chrono::seconds(120));
    std::cout << "lintian (exit " << r.exit_code << "):\n" << r.out << r.err;
    ASSERT_FALSE(r.timed_out);
    const std::string doc = read_file(fs::path(MTLS_SOURCE_DIR) / "docs" / "packaging.md");
    for (const auto& l : lines_of(r.out)) {
        EXPECT_NE(l.rfind("E: ", 0), 0u) << l;
        if (l.rfind("W: ", 0) == 0) {
            std::smatch m;
            ASSERT_TRUE(std::regex_search(l, m, std::regex(R"(^W: [^:]+: ([a-z0-9.+-]+))"))) << l;
            EXPECT_NE(doc.find(m[1].str()), std::string::npos)
                << "lintian warning " << m[1] << " is not explained in docs/packaging.md";
        }
    }
    EXPECT_EQ(r.exit_code, 0);  // lintian exits non-zero on errors
}

class InstalledPackage : public InstalledPackageTest {};

TEST_F(InstalledPackage, InstallsUsersDirectoriesAndAVerifiedHardenedUnit) {
    install_deb(build_deb());

    auto* pw = ::getpwnam("mtls-agent");
    ASSERT_NE(pw, nullptr) << "sysusers.d made no user mtls-agent";
    EXPECT_EQ(std::string(pw->pw_dir), "/var/lib/mtls-agent");
    auto groups = run({"id", "-nG", "mtls-agent"}).out;
    EXPECT_NE(groups.find("mtls-admin"), std::string::npos) << groups;
    EXPECT_NE(::getgrnam("softhsm"), nullptr);  // SupplementaryGroups= needs it

    auto etc = meta("/etc/mtls-agent");
    EXPECT_EQ(etc.mode, 0750u);
    EXPECT_EQ(etc.owner, "root");
    EXPECT_EQ(etc.group, "mtls-agent");
    auto state = meta("/var/lib/mtls-agent");
    EXPECT_EQ(state.mode, 0700u);
    EXPECT_EQ(state.owner, "mtls-agent");
    EXPECT_TRUE(fs::is_symlink("/etc/systemd/system/multi-user.target.wants/mtls-agent.service"))
        << "deb-systemd-helper enable did not enable the unit";

    const std::string unit = read_file(kUnit);
    EXPECT_NE(unit.find("ExecStart=/usr/bin/mtls-agent --config " + kConfig), std::string::npos);
    EXPECT_FALSE(std::regex_search(unit, std::regex("@[A-Z_]+@"))) << "unsubstituted @VAR@";

    // verify: syntax, ExecStart binaries, and the man pages Documentation= names.
    auto v = run({"systemd-analyze", "verify", kUnit}, {}, std::chrono::seconds(60));
    std::cout << "systemd-analyze verify: exit " << v.exit_code << "\n" << v.out << v.err;
    EXPECT_EQ(v.exit_code, 0);
    for (const auto& l : lines_of(v.out + v.err))
        EXPECT_EQ(l.find("mtls-agent"), std::string::npos) << l;

    auto s =
        run({"systemd-analyze", "security", "--offline=true", kUnit}, {}, std::chrono::seconds(60));
    std::smatch m;
    const std::string all = s.out + s.err;
    ASSERT_TRUE(std::regex_search(
        all, m, std::regex(R"(Overall exposure level for mtls-agent\.service: ([0-9]+\.[0-9]+))")))
        << all;
    const double exposure = std::stod(m[1]);
    std::cout << "=== exposure (systemd-analyze security --offline=true): " << m[1] << "\n";
    EXPECT_LE(exposure, 2.0) << all;
}

TEST_F(InstalledPackage, UpgradeKeepsAnEditedConfigAndTheOperatorsFiles) {
    const auto deb = build_deb();
    install_deb(deb);
    const std::string sample = read_file(kConfig);
    ASSERT_EQ(sample, read_file("/usr/share/doc/mtls-agent/examples/mtls-agent.toml"));
    append(kConfig, "# edited by the operator\n");
    std::ofstream("/etc/mtls-agent/token-pin") << "1234";
    std::ofstream("/var/lib/mtls-agent/identity.json") << "{}";

    install_deb(deb);  // reinstall of the same version
    EXPECT_EQ(read_file(kConfig), sample + "# edited by the operator\n");

    TempDir dir("mtls-upgrade");
    install_deb(deb_with_version(deb, dir.path(), MTLS_DEB_VERSION "+upgrade1"));  // upgrade
    auto status = run({"dpkg-query", "-W", "-f=${Version}", "mtls-agent"});
    EXPECT_EQ(status.out, MTLS_DEB_VERSION "+upgrade1");
    EXPECT_EQ(read_file(kConfig), sample + "# edited by the operator\n");
    EXPECT_EQ(read_file("/etc/mtls-agent/token-pin"), "1234");
    EXPECT_EQ(read_file("/var/lib/mtls-agent/identity.json"), "{}");
    EXPECT_FALSE(fs::exists(kConfig + ".dpkg-new"));
    EXPECT_FALSE(fs::exists(kConfig + ".dpkg-dist"));
}

TEST_F(InstalledPackage, PurgeLeavesNothing) {
    const auto deb = build_deb();
    install_deb(deb);
    append(kConfig, "# edited\n");
    std::ofstream("/etc/mtls-agent/token-pin") << "1234";
    std::ofstream("/var/lib/mtls-agent/identity.json") << "{}";

    auto r = run({"dpkg", "--purge", "mtls-agent"}, {}, std::chrono::seconds(120));
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_NE(run({"dpkg-query", "-W", "mtls-agent"}).exit_code, 0) << "still known to dpkg";
    for (const auto& f : deb_files(deb)) EXPECT_FALSE(fs::exists(f)) << f;
    for (const char* p :
         {"/etc/mtls-agent", "/var/lib/mtls-agent", "/usr/share/doc/mtls-agent",
          "/etc/systemd/system/multi-user.target.wants/mtls-agent.service",
          "/var/lib/systemd/deb-systemd-helper-enabled/mtls-agent.service.dsh-also",
          "/var/lib/systemd/deb-systemd-helper-enabled/multi-user.target.wants/mtls-agent.service",
          "/var/lib/systemd/deb-systemd-helper-masked/mtls-agent.service"})
        EXPECT_FALSE(fs::exists(fs::symlink_status(p))) << p;
}

// `cmake --install` into a DESTDIR: the same files in the same places as the .deb, and a
// second install keeps an edited configuration.
TEST(CmakeInstall, SamePathsAsTheDebAndKeepsAnEditedConfig) {
    if (auto why = cannot_run_reason(); !why.empty()) GTEST_SKIP() << why;
    TempDir dest("mtls-destdir");
    auto install = [&] {
        return run({MTLS_CMAKE_COMMAND, "--install", MTLS_BINARY_DIR},
                   {"DESTDIR=" + dest.path().string()}, std::chrono::seconds(120));
    };
    auto r = install();
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;

    std::set<std::string> installed;
    for (const auto& e : fs::recursive_directory_iterator(dest.path()))
        if (!e.is_directory()) installed.insert("/" + fs::relative(e.path(), dest.path()).string());
    auto files = deb_files(build_deb());
    EXPECT_EQ(installed, std::set<std::string>(files.begin(), files.end()));

    const fs::path config = dest / "etc/mtls-agent/mtls-agent.toml";
    append(config, "# edited\n");
    r = install();
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_NE(read_file(config).find("# edited\n"), std::string::npos) << "overwritten";
    EXPECT_NE(r.out.find("Keeping: "), std::string::npos) << r.out;
    EXPECT_EQ(read_file(dest / "usr/share/doc/mtls-agent/examples/mtls-agent.toml"),
              read_file(fs::path(MTLS_SOURCE_DIR) / "config" / "mtls-agent.toml"));
}
