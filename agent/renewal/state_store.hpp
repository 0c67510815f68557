// The agent's persisted identity state (state_dir/identity.json, mode 0600, replaced
// atomically): which token key is current, its certificate chain, keys being retired, the
// EST CA certificates learned at first contact, this agent's instance id (agent/renewal/
// instance.hpp: the first 8 bytes of the CKA_ID of every key it makes) and the CKA_ID of a
// key about to be generated (recorded before C_GenerateKeyPair, so that start-up can remove
// what an interrupted generation left). Never a private key: keys stay on the token and are
// referred to by CKA_ID.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace mtls::renewal {

struct KeyRef {
    std::string id_hex;  // CKA_ID, lower-case hex
    std::string label;   // CKA_LABEL
    std::string type;    // "ec-p256", …
};

struct RetiringKey {
    KeyRef key;
    std::int64_t destroy_after = 0;  // Unix seconds
};

// The outcome of the last enrollment/renewal attempt, kept so that status does not read
// "never" after a restart. Absent in files written before it existed (= never).
struct LastRenewal {
    std::int64_t at = 0;  // Unix seconds
    bool ok = false;
    std::string message;  // "ok" or what failed (at most 1000 bytes)
    int consecutive_failures = 0;
};

// The last time our key was declared compromised (`mtls-agentctl rotate --compromised`, or
// our certificate found revoked), kept for status. `destroy_key` is the CKA_ID (hex) of the
// burnt key while it may still be on the token: saved before the key is destroyed, cleared
// after; a start-up that finds it set destroys that key and never uses it again.
struct Compromise {
    std::int64_t at = 0;  // Unix seconds
    std::string trigger;  // "operator" | "revoked"
    std::string reason;   // at most 1000 bytes
    std::optional<std::string> destroy_key;
};

struct State {
    std::optional<KeyRef> current_key;
    std::string chain_pem;  // leaf first; empty while not enrolled
    std::vector<RetiringKey> retiring;
    std::string est_ca_pem;  // RFC 7030 §4.1.3 explicit trust anchor after bootstrap
    std::string instance;    // this agent's instance id (16 hex digits); "" in old states
    std::optional<std::string> pending_key;  // CKA_ID hex of a key being generated
    std::optional<LastRenewal> last_renewal;
    std::optional<Compromise> last_compromise;

    // Every key id the state refers to (current + retiring).
    std::vector<std::string> referenced_ids() const;
};

class StateError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

class StateStore {
  public:
    explicit StateStore(std::filesystem::path dir);

    // nullopt when there is no state file yet. Throws StateError (naming the file and the
    // problem) when it exists but cannot be read or parsed.
    std::optional<State> load() const;
    // Atomic replace (write temp, fsync, rename, fsync dir), mode 0600.
    void save(const State& s) const;

    const std::filesystem::path& path() const { return path_; }

  private:
    std::filesystem::path dir_;
    std::filesystem::path path_;
};

// Parsing/serialising without the filesystem (also the fuzz target's entry point).
State parse_state(std::string_view json_text, const std::string& origin);
std::string serialize_state(const State& s);

}  // namespace mtls::renewal
