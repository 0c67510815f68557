#include "common/atomic_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <random>
#include <stdexcept>
#include <system_error>

namespace mtls::files {
namespace {

[[noreturn]] void fail(const std::string& what, const std::filesystem::path& p) {
    throw std::system_error(errno, std::generic_category(), what + " " + p.string());
}

struct Fd {
    int fd = -1;
    ~Fd() {
        if (fd >= 0) ::close(fd);
    }
};

std::string read_fd(int fd, const std::filesystem::path& path, std::size_t max_bytes) {
    std::string out;
    char buf[16384];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            fail("cannot read", path);
        }
        if (n == 0) break;
        if (out.size() + static_cast<size_t>(n) > max_bytes)
            throw std::length_error(path.string() + " is larger than " + std::to_string(max_bytes) +
                                    " bytes");
        out.append(buf, static_cast<size_t>(n));
    }
    return out;
}
}  // namespace

void write_atomic(const std::filesystem::path& path, std::string_view data, mode_t mode) {
    write_atomic(path, data, mode, FileOwner{});
}

void write_atomic(const std::filesystem::path& path, std::string_view data, mode_t mode,
                  const FileOwner& owner) {
    auto dir = path.parent_path();
    if (dir.empty()) dir = ".";
    std::random_device rd;
    auto tmp = dir / ("." + path.filename().string() + ".tmp" + std::to_string(rd()));
    Fd f;
    f.fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
    if (f.fd < 0) fail("cannot create", tmp);
    // From here on a failure removes the temporary file.
    struct Unlink {
        const std::filesystem::path* p;
        ~Unlink() {
            if (p) {
                int e = errno;
                ::unlink(p->c_str());
                errno = e;
            }
        }
    } cleanup{&tmp};
    const bool chown = owner.uid != static_cast<uid_t>(-1) || owner.gid != static_cast<gid_t>(-1);
    if (chown && ::fchown(f.fd, owner.uid, owner.gid) != 0) fail("cannot set the owner of", tmp);
    if (::fchmod(f.fd, mode) != 0) fail("cannot chmod", tmp);  // umask must not widen/narrow
    size_t off = 0;
    while (off < data.size()) {
        ssize_t n = ::write(f.fd, data.data() + off, data.size() - off);
        if (n < 0) {
            if (errno == EINTR) continue;
            fail("cannot write", tmp);
        }
        off += static_cast<size_t>(n);
    }
    if (::fsync(f.fd) != 0) fail("cannot fsync", tmp);
    ::close(f.fd);
    f.fd = -1;
    if (::rename(tmp.c_str(), path.c_str()) != 0) fail("cannot rename into place", path);
    cleanup.p = nullptr;
    Fd d;
    d.fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (d.fd >= 0) ::fsync(d.fd);
}

std::string read_all(const std::filesystem::path& path, std::size_t max_bytes) {
    Fd f;
    f.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (f.fd < 0) fail("cannot open", path);
    return read_fd(f.fd, path, max_bytes);
}

void ensure_dir(const std::filesystem::path& path, mode_t mode) {
    std::error_code ec;
    std::filesystem::create_directories(path, ec);
    if (ec) throw std::system_error(ec, "cannot create directory " + path.string());
    // The directory itself, never what a symbolic link in its place points to.
    Fd d;
    d.fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (d.fd < 0) {
        struct stat st {};
        if (::lstat(path.c_str(), &st) == 0 && S_ISLNK(st.st_mode))
            throw std::runtime_error(path.string() +
                                     " is a symbolic link; refusing to use it (make it a real "
                                     "directory owned by the agent's user)");
        fail("cannot open directory", path);
    }
    struct stat st {};
    if (::fstat(d.fd, &st) != 0) fail("cannot stat directory", path);
    if (st.st_uid != ::geteuid())
        throw std::runtime_error(path.string() + " is owned by uid " + std::to_string(st.st_uid) +
                                 ", not by the agent's uid " + std::to_string(::geteuid()) +
                                 "; refusing to keep private state there (chown it, or choose "
                                 "another directory)");
    if (::fchmod(d.fd, mode) != 0) fail("cannot chmod directory", path);
}

std::string read_private(const std::filesystem::path& path, std::size_t max_bytes) {
    Fd f;
    f.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (f.fd < 0) {
        if (errno == ELOOP)
            throw std::system_error(errno, std::generic_category(),
                                    path.string() + " is a symbolic link; refusing to read it");
        fail("cannot open", path);
    }
    struct stat st {};
    if (::fstat(f.fd, &st) != 0) fail("cannot stat", path);
    if (st.st_uid != ::geteuid())
        throw std::system_error(EPERM, std::generic_category(),
                                path.string() + " is owned by uid " + std::to_string(st.st_uid) +
                                    ", not by the agent's; refusing to trust it");
    if (!S_ISREG(st.st_mode))
        throw std::system_error(EINVAL, std::generic_category(),
                                path.string() + " is not a regular file");
    return read_fd(f.fd, path, max_bytes);
}

}  // namespace mtls::files
