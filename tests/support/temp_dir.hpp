// Test helper: a private temporary directory (mode 0700), removed with its contents when
// the object goes away.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

namespace mtls::test {

class TempDir {
  public:
    // Created under $TMPDIR (or /tmp) as <prefix>-XXXXXX.
    explicit TempDir(std::string_view prefix = "mtls-test");
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    TempDir(TempDir&& other) noexcept;
    TempDir& operator=(TempDir&&) = delete;

    const std::filesystem::path& path() const { return path_; }
    std::filesystem::path operator/(std::string_view name) const { return path_ / name; }

    // Writes `data` to <dir>/<name> with `mode`; returns the full path.
    std::filesystem::path write(std::string_view name, std::string_view data,
                                unsigned mode = 0600) const;

  private:
    std::filesystem::path path_;
};

}  // namespace mtls::test
