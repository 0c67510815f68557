#include "tests/package/package_fixture.hpp"

#include "tests/support/subprocess.hpp"
#include "tests/support/temp_dir.hpp"

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>

namespace mtls::test::package {

namespace fs = std::filesystem;

namespace {

std::string describe(const RunResult& r) {
    return "exit " + std::to_string(r.exit_code) + (r.timed_out ? " (timed out)" : "") +
           "\n--- stdout\n" + r.out + "--- stderr\n" + r.err;
}

std::optional<fs::path> single_deb_in(const fs::path& dir) {
    std::optional<fs::path> found;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir, ec)) {
        const std::string name = e.path().filename().string();
        if (name.rfind("mtls-agent_", 0) == 0 && e.path().extension() == ".deb") {
            if (found) throw std::runtime_error("more than one mtls-agent .deb in " + dir.string());
            found = e.path();
        }
    }
    return found;
}

// Which of the package's accounts existed before this process first installed it.
struct Accounts {
    bool user_mtls_agent = false;
    bool group_mtls_agent = false;
    bool group_mtls_admin = false;
    bool group_softhsm = false;
};
std::optional<Accounts> g_before;

bool user_exists(const char* name) {
    return ::getpwnam(name) != nullptr;
}
bool group_exists(const char* name) {
    return ::getgrnam(name) != nullptr;
}

bool package_known_to_dpkg() {
    auto r = run({"dpkg-query", "-W", "-f=${db:Status-Abbrev}", "mtls-agent"}, {},
                 std::chrono::seconds(30));
    // "ii ", "rc ", "iF " …: anything but "not installed" (exit 1 / "un ").
    return r.exit_code == 0 && !r.out.empty() && r.out.rfind("un", 0) != 0;
}

}  // namespace

std::string cannot_run_reason() {
    if (::geteuid() != 0) return "package tests install a .deb with dpkg: they need root";
    if (run({"sh", "-c", "command -v dpkg"}).exit_code != 0) return "no dpkg on this machine";
    return "";
}

fs::path build_deb() {
    static std::optional<fs::path> cached;
    static std::unique_ptr<TempDir> own_dir;
    if (cached) return *cached;
    if (const char* dir = std::getenv("MTLS_TEST_DEB_DIR"); dir && *dir) {
        auto deb = single_deb_in(dir);
        if (!deb) throw std::runtime_error(std::string("no mtls-agent .deb in ") + dir);
        cached = *deb;
        return *cached;
    }
    own_dir = std::make_unique<TempDir>("mtls-deb");
    auto r = run({MTLS_CPACK_COMMAND, "-G", "DEB", "--config", MTLS_CPACK_CONFIG, "-B",
                  own_dir->path().string()},
                 {}, std::chrono::seconds(300));
    if (r.exit_code != 0) throw std::runtime_error("cpack failed: " + describe(r));
    auto deb = single_deb_in(own_dir->path());
    if (!deb) throw std::runtime_error("cpack made no .deb: " + describe(r));
    cached = *deb;
    return *cached;
}

void install_deb(const fs::path& deb) {
    if (!g_before) {
        g_before = Accounts{user_exists("mtls-agent"), group_exists("mtls-agent"),
                            group_exists("mtls-admin"), group_exists("softhsm")};
    }
    auto r = run({"dpkg", "-i", deb.string()}, {"DEBIAN_FRONTEND=noninteractive"},
                 std::chrono::seconds(120));
    if (r.exit_code != 0) throw std::runtime_error("dpkg -i " + deb.string() + ": " + describe(r));
}

std::string purge() {
    std::string out;
    if (package_known_to_dpkg()) {
        auto r = run({"dpkg", "--purge", "mtls-agent"}, {"DEBIAN_FRONTEND=noninteractive"},
                     std::chrono::seconds(120));
        out = r.out + r.err;
    }
    if (g_before) {
        if (!g_before->user_mtls_agent && user_exists("mtls-agent")) run({"userdel", "mtls-agent"});
        if (!g_before->group_mtls_agent && group_exists("mtls-agent"))
            run({"groupdel", "mtls-agent"});
        if (!g_before->group_mtls_admin && group_exists("mtls-admin"))
            run({"groupdel", "mtls-admin"});
        if (!g_before->group_softhsm && group_exists("softhsm")) run({"groupdel", "softhsm"});
    }
    return out;
}

std::vector<std::string> deb_files(const fs::path& deb) {
    auto list = run({"bash", "-c", "set -o pipefail; dpkg-deb --fsys-tarfile \"$1\" | tar -t",
                     "bash", deb.string()});
    if (list.exit_code != 0) throw std::runtime_error("tar -t: " + describe(list));
    std::vector<std::string> files;
    std::istringstream in(list.out);
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty() || line.back() == '/') continue;  // directories
        if (line.rfind("./", 0) == 0) line.erase(0, 1);
        files.push_back(line);
    }
    std::sort(files.begin(), files.end());
    return files;
}

fs::path deb_with_version(const fs::path& deb, const fs::path& dir, const std::string& version) {
    const fs::path tree = dir / ("tree-" + version);
    auto r = run({"dpkg-deb", "-R", deb.string(), tree.string()});
    if (r.exit_code != 0) throw std::runtime_error("dpkg-deb -R: " + describe(r));
    const fs::path control = tree / "DEBIAN" / "control";
    std::ifstream in(control);
    std::stringstream text;
    std::string line;
    while (std::getline(in, line))
        text << (line.rfind("Version: ", 0) == 0 ? "Version: " + version : line) << '\n';
    in.close();
    std::ofstream(control, std::ios::trunc) << text.str();
    const fs::path out = dir / ("mtls-agent_" + version + ".deb");
    r = run({"dpkg-deb", "--root-owner-group", "-b", tree.string(), out.string()});
    if (r.exit_code != 0) throw std::runtime_error("dpkg-deb -b: " + describe(r));
    return out;
}

std::string read_file(const fs::path& p) {
    std::ifstream in(p);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

void InstalledPackageTest::SetUp() {
    if (auto why = cannot_run_reason(); !why.empty()) GTEST_SKIP() << why;
    purge();
}

void InstalledPackageTest::TearDown() {
    if (cannot_run_reason().empty()) purge();
}

}  // namespace mtls::test::package
