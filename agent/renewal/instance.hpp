// Which token objects belong to this agent. Several agents (or other programs) may share one
// token, so an agent only ever destroys objects it made itself, and it knows them by its
// instance id: 8 random bytes made at its first start, kept in state_dir/instance (mode 0600,
// written before any key is generated) and in identity.json. Every key it generates has
// CKA_ID = instance id (8 bytes) + 8 random bytes, and CKA_LABEL
// "<label_prefix>-<instance hex>-<time>-<random>" for people reading the token.
// Ownership is decided on the CKA_ID alone, byte for byte; a label prefix proves nothing
// (`mtls-agent` is a prefix of `mtls-agent-b`).
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

namespace mtls::renewal {

inline constexpr std::size_t kInstanceBytes = 8;

class Instance {
  public:
    // The instance id of the agent with this state directory: state_dir/instance when it
    // exists; else `from_state` (identity.json's, written by an older run) when not empty;
    // else a new random one. The file is (re)written atomically when it was missing. Throws
    // std::runtime_error when the file exists but does not hold an instance id.
    static Instance load_or_create(const std::filesystem::path& state_dir,
                                   const std::string& from_state);

    const std::string& hex() const noexcept { return hex_; }  // 16 lower-case hex digits
    const std::string& raw() const noexcept { return raw_; }  // 8 bytes
    // Whether the file was created just now (no earlier run left one).
    bool created() const noexcept { return created_; }

    // A fresh CKA_ID for a key of this instance (raw bytes: instance + 8 random bytes).
    std::string new_key_id() const;
    // Whether a CKA_ID (raw bytes) is one this instance made.
    bool owns(std::string_view key_id) const noexcept;

  private:
    std::string hex_, raw_;
    bool created_ = false;
};

}  // namespace mtls::renewal
