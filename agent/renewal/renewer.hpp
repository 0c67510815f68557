// The renewal engine: owns the lifecycle path of DESIGN.md. At start it reconciles the
// persisted state with the token (orphan keys from a crash are destroyed — only keys with
// our label prefix that no state references), publishes a still-valid persisted identity or
// enrolls a new one; then it renews on schedule (fraction of the lifetime ± jitter), retries
// failures with capped backoff, and destroys retired keys after their grace period.
//
// Order of a rekeying renewal, chosen so that a crash at any point leaves a usable state
// and at most one unreferenced key (cleaned up at the next start):
//   csrattrs (which key type) -> generate key on token -> CSR signed on the token -> EST
//   (re)enroll -> verify chain and key match -> persist state (new key current, old key
//   retiring) -> store cert on token -> publish snapshot -> ... grace ... -> destroy old key
//   -> persist.
//
// All blocking work (EST over libcurl, Cryptoki) runs on the renewer's own thread; requests
// from the admin socket are queued to it and completed through a callback.
#pragma once

#include "agent/identity/identity_store.hpp"
#include "agent/renewal/schedule.hpp"
#include "agent/renewal/state_store.hpp"
#include "config/config.hpp"
#include "pkcs11/provider/provider.hpp"

#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

namespace mtls::renewal {

struct Step {
    std::string step;    // "generate_key", "enroll", …
    std::string status;  // "ok" | "failed" | "skipped"
    std::string detail;
};

struct Outcome {
    bool ok = false;
    std::vector<Step> steps;
    std::string message;  // one line: what happened, or what failed and what to do
};

struct Status {
    std::optional<Clock::time_point> next_at;
    std::optional<Clock::time_point> last_at;
    std::string last_result = "never";  // "ok" or the last error message
    std::uint64_t attempts = 0;
    std::uint64_t failures = 0;
    int consecutive_failures = 0;
    std::string key_type;   // of the current key
    std::string key_label;  // of the current key
};

class Renewer {
  public:
    enum class Kind { renew, rotate };
    using Done = std::function<void(const Outcome&)>;
    // Called after every attempt (for metrics and the token cache).
    using AttemptHook = std::function<void(const Outcome&, const identity::IdentityPtr& now)>;

    Renewer(config::Config cfg, std::shared_ptr<pkcs11::ProviderContext> provider,
            identity::IdentityStore& identities, AttemptHook on_attempt = {});
    ~Renewer();
    Renewer(const Renewer&) = delete;
    Renewer& operator=(const Renewer&) = delete;

    // Reconciles state with the token and publishes or enrolls an identity (blocking). Throws
    // StateError / pkcs11::Error only for problems that retrying cannot fix; a failed first
    // enrollment is not thrown: the agent runs without identity and the loop retries.
    Outcome start_up();
    // Starts the background thread (after start_up()).
    void run();
    void stop();

    // Queue a renewal (policy rekey) or a rotation (always a new key); `done` is called on
    // the renewer's thread when it has finished.
    void request(Kind kind, Done done);
    // Swap in a reloaded configuration (used from the next attempt on).
    void update_config(const config::Config& cfg);

    Status status() const;

  private:
    Outcome attempt(bool force_rekey, std::stop_token stop);
    Outcome enroll_fresh(State& st, std::stop_token stop);
    Outcome renew_with(State& st, const identity::IdentityPtr& current, bool rekey,
                       std::stop_token stop);
    void retire_due(State& st);
    void schedule_next(const identity::IdentityPtr& id, bool failed);
    void loop(std::stop_token stop);

    mutable std::mutex mu_;  // guards everything below but the thread
    std::condition_variable_any cv_;
    config::Config cfg_;
    std::shared_ptr<pkcs11::ProviderContext> provider_;
    identity::IdentityStore& identities_;
    AttemptHook on_attempt_;
    StateStore store_;
    std::optional<State> state_;  // last persisted state (renewer thread + start_up only)
    std::deque<std::pair<Kind, Done>> queue_;
    Status status_;
    Backoff backoff_;
    std::mt19937_64 rng_{std::random_device{}()};
    // Retired keys whose old identity may still be in use (renewer thread only): a key is
    // destroyed after its grace period once no connection holds that identity any more, or
    // at the latest one more grace period later.
    std::map<std::string, std::weak_ptr<const identity::Identity>> retired_identities_;
    bool retire_postponed_ = false;
    std::jthread thread_;
};

}  // namespace mtls::renewal
