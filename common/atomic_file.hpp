// Files the agent writes (state, PEM chains) are replaced atomically with tight modes:
// a temporary file created O_EXCL with the final mode in the same directory, written,
// fsync'd, renamed over the target, then the directory fsync'd.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>

namespace mtls::files {

// Throws std::system_error naming the path and the step that failed.
void write_atomic(const std::filesystem::path& path, std::string_view data, mode_t mode = 0600);

// Who a written file belongs to; -1 leaves that id as the process's.
struct FileOwner {
    uid_t uid = static_cast<uid_t>(-1);
    gid_t gid = static_cast<gid_t>(-1);
};
// Like write_atomic, and the temporary file gets `owner` (fchown) before it is renamed into
// place, so a reader never sees the file with another owner or mode. A refused fchown
// throws std::system_error with EPERM naming the path.
void write_atomic(const std::filesystem::path& path, std::string_view data, mode_t mode,
                  const FileOwner& owner);

// Reads a whole file; throws std::system_error naming the path; refuses files larger than
// max_bytes with std::length_error.
std::string read_all(const std::filesystem::path& path, std::size_t max_bytes = 16u << 20);

// A private file of the agent (its state): like read_all, but refuses a symbolic link
// (O_NOFOLLOW), a file owned by another uid, and anything but a regular file.
std::string read_private(const std::filesystem::path& path, std::size_t max_bytes = 16u << 20);

// Creates a directory (and parents) if missing, and sets `mode` on the last component.
// Refuses (std::runtime_error saying what to do) a last component that is a symbolic link
// or is owned by another uid than the process's effective one: private state never goes
// where another user can read or swap it.
void ensure_dir(const std::filesystem::path& path, mode_t mode = 0700);

}  // namespace mtls::files
