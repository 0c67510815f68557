// Test helper: a stand-in for journald's native socket, to read what sd_journal_send sends.
// libsystemd writes datagrams to the fixed path /run/systemd/journal/socket, so the caller
// moves itself into a private mount namespace (root only) with a tmpfs over /run, where a
// datagram socket is bound at that path; processes started afterwards inherit the view.
//
//   JournalStandIn j;
//   if (!j.error.empty()) GTEST_SKIP() << j.error;
//   … log, or start the agent with JOURNAL_STREAM naming its stderr …
//   auto fields = parse_journal_native(j.receive());
//
// Header-only: used by unit_tests (no test support library) and the agent-level tests.
#pragma once

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <string>

namespace mtls::test {

inline constexpr const char* kJournalSocket = "/run/systemd/journal/socket";

struct JournalStandIn {
    int fd = -1;
    std::string error;  // why there is no stand-in (then skip)
    bool mounted = false;

    JournalStandIn() { error = set_up(); }

  private:
    // "" or why it could not be set up.
    std::string set_up() {
        auto fail = [](const std::string& what) { return what + ": " + std::strerror(errno); };
        if (::geteuid() != 0) return "needs root for a private mount namespace";
        if (::unshare(CLONE_NEWNS) != 0) return fail("unshare(CLONE_NEWNS)");
        if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
            return fail("mount --make-rprivate /");
        if (::mount("tmpfs", "/run", "tmpfs", 0, "mode=0755") != 0) return fail("tmpfs on /run");
        mounted = true;
        std::error_code ec;
        std::filesystem::create_directories("/run/systemd/journal", ec);
        fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        sockaddr_un sa{};
        sa.sun_family = AF_UNIX;
        std::strcpy(sa.sun_path, kJournalSocket);
        if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0)
            return fail("bind the stand-in journal socket");
        int big = 4 << 20;  // room for a burst of start-up events
        ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
        return {};
    }

  public:
    ~JournalStandIn() {
        if (fd >= 0) ::close(fd);
        if (mounted) ::umount2("/run", MNT_DETACH);  // the host's /run again (the namespace stays)
    }
    JournalStandIn(const JournalStandIn&) = delete;
    JournalStandIn& operator=(const JournalStandIn&) = delete;

    // The next datagram, or nullopt when none is queued.
    std::optional<std::string> receive() const {
        std::string d(1 << 17, '\0');
        const auto n = ::recv(fd, d.data(), d.size(), MSG_DONTWAIT);
        if (n < 0) return std::nullopt;
        d.resize(static_cast<std::size_t>(n));
        return d;
    }
};

// "<st_dev>:<st_ino>" of a file, as systemd sets JOURNAL_STREAM for a service's stderr.
inline std::string journal_stream_of(const std::filesystem::path& file) {
    struct stat st {};
    if (::stat(file.c_str(), &st) != 0) return {};
    return std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
}

// One datagram of the journal native protocol (systemd.io/JOURNAL_NATIVE_PROTOCOL):
// KEY=value\n, or for a value with a newline KEY\n<64-bit little-endian length><value>\n.
inline std::multimap<std::string, std::string> parse_journal_native(const std::string& d) {
    std::multimap<std::string, std::string> out;
    std::size_t at = 0;
    while (at < d.size()) {
        const auto nl = d.find('\n', at);
        const auto eq = d.find('=', at);
        if (nl == std::string::npos) break;
        if (eq != std::string::npos && eq < nl) {
            out.emplace(d.substr(at, eq - at), d.substr(eq + 1, nl - eq - 1));
            at = nl + 1;
        } else {
            const std::string key = d.substr(at, nl - at);
            if (nl + 9 > d.size()) break;
            std::uint64_t len = 0;
            for (int i = 7; i >= 0; --i)
                len = (len << 8) | static_cast<unsigned char>(d[nl + 1 + i]);
            if (len > d.size() - (nl + 9)) break;
            out.emplace(key, d.substr(nl + 9, len));
            at = nl + 9 + len + 1;
        }
    }
    return out;
}

}  // namespace mtls::test
