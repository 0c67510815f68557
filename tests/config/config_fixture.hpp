// A minimal valid configuration (15 lines, known line numbers) and the files it names, in
// a temporary directory; tests change single lines or append and compare the exact errors.
#pragma once

#include "config/config.hpp"
#include "tests/support/temp_dir.hpp"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

namespace mtls::test {

class ConfigTest : public ::testing::Test {
  protected:
    void SetUp() override;

    // The base config; its lines:
    //   1 [pkcs11]          6 [est]               12 [[routes]]
    //   2 module = …        7 server = …          13 name = "partner-a"
    //   3 token = …         8 pinned_sha256 = …   14 path_prefix = "/partner-a/"
    //   4 pin_env = …       9 basic_credentials   15 upstream = "https://api.partner-a.example/"
    //   5                  10 common_name = …
    //                      11
    std::string base() const;
    // `text` with line `n` (1-based) replaced by `with` (which may hold several lines).
    static std::string replace_line(const std::string& text, int n, std::string_view with);
    std::string base_with(int n, std::string_view with) const {
        return replace_line(base(), n, with);
    }

    // load_string(text, "agent.toml"): every error as a string (empty when valid).
    static std::vector<std::string> errors(const std::string& text);
    static std::optional<config::Config> load(const std::string& text);

    std::string d() const { return dir.path().string(); }
    TempDir dir{"mtls-config"};
};

}  // namespace mtls::test
