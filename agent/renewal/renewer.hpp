// The renewal engine: owns the lifecycle path of DESIGN.md. At start it reconciles the
// persisted state with the token (objects a crash left are destroyed — only objects whose
// CKA_ID carries this agent's instance id (instance.hpp) and that no state references, and
// the key whose generation state.pending_key says was under way), publishes a still-valid
// persisted identity or enrolls a new one; then it renews on schedule (fraction of the
// lifetime ± jitter), retries failures with capped backoff, and destroys retired keys after
// their grace period. When a signature finds the current key gone from the token it enrolls
// a new key without a restart (key_gone()).
//
// Order of a rekeying renewal, chosen so that a crash at any point leaves a usable state
// and at most one unreferenced key (cleaned up at the next start):
//   csrattrs (which key type) -> save the new key's CKA_ID as state.pending_key -> generate
//   key on token -> CSR signed on the token -> EST (re)enroll -> verify chain and key match
//   -> persist state (new key current, old key retiring, no pending key) -> store cert on
//   token -> publish snapshot -> ... grace ... -> destroy old key -> persist.
//
// A compromised key (compromised(): `mtls-agentctl rotate --compromised`, or our certificate
// found revoked) skips all of that: the identity is burnt at once (IdentityStore::burn(): no
// request uses it from then on; the daemon cuts its connections and drops its tokens), then
// on the renewer's thread, in this order:
//   persist the intent (state.last_compromise.destroy_key = the burnt key, current_key
//   cleared) -> destroy the key on the token -> persist (destroy_key cleared) -> enroll a new
//   key with the bootstrap credentials (enroll_fresh, as at first start: a correct CA refuses
//   re-enrollment authenticated by a revoked certificate).
// A crash after the intent is saved is finished by start-up (the key is destroyed, never
// published); a crash before it leaves the state as it was (the command had not completed).
//
// All blocking work (EST over libcurl, Cryptoki) runs on the renewer's own thread; requests
// from the admin socket are queued to it and completed through a callback.
#pragma once

#include "agent/identity/identity_store.hpp"
#include "agent/renewal/instance.hpp"
#include "agent/renewal/schedule.hpp"
#include "agent/renewal/state_store.hpp"
#include "config/config.hpp"
#include "pkcs11/provider/provider.hpp"

#include <chrono>
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
    // Set while the current key is missing on the token or was burnt (until a new one is
    // enrolled): "the current key is missing on the token", "our key was declared
    // compromised (…)", "our certificate was revoked (…)".
    std::string key_problem;
    // The last time our key was declared compromised (kept in identity.json).
    struct Compromise {
        Clock::time_point at;
        std::string trigger;  // "operator" | "revoked"
        std::string reason;
    };
    std::optional<Compromise> last_compromise;
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
    // The current key is burnt (trigger "operator": rotate --compromised; "revoked": our
    // certificate was found revoked; `reason` says why, for status and the logs). At once, on
    // the calling thread: status fails with `problem`, the identity is burnt
    // (IdentityStore::burn()). Then, queued before anything else, the compromised order at
    // the top; `done` is called on the renewer's thread when the new identity is published
    // or the enrollment failed (the old key is destroyed either way, unless the token
    // refused: a failed step says so).
    // `destroyed` (optional) is called on the renewer's thread as soon as the old key is gone
    // from the token (or its destruction failed: the outcome says so), before the enrollment.
    void compromised(std::string trigger, std::string reason, std::string problem, Done destroyed,
                     Done done);
    // Swap in a reloaded configuration (used from the next attempt on).
    void update_config(const config::Config& cfg);

    Status status() const;
    // The EST CA certificates (PEM) learned at first contact ("" before): the root our
    // chain ends at, for the revocation check of the last intermediate.
    std::string est_ca_pem() const;

    // Told (by the token's key-gone observer, on a signing thread) that a signature needed
    // the private key with this CKA_ID (raw bytes) and the token no longer has it. When it is
    // the current key: status fails with "the current key is missing on the token", one log
    // line, and the renewer enrolls a new key with the bootstrap credentials (as at first
    // start), without a restart. Other keys (a retired one) are ignored. Never blocks long.
    void key_gone(const std::string& key_id);

  private:
    struct Job {
        Kind kind = Kind::renew;
        Done done;
        bool compromised = false;
        std::string trigger, reason;
        std::string burnt_key;  // CKA_ID hex of the burnt identity's key ("" if none)
        Done destroyed;         // compromised: told once the old key is gone
    };
    Outcome attempt(bool force_rekey, std::stop_token stop, bool fresh = false);
    // The compromised order (top): destroys the burnt key(s), then attempt(fresh).
    Outcome replace_compromised(const Job& job, std::stop_token stop);
    // Start-up: a compromise whose key was not yet destroyed (state.last_compromise.
    // destroy_key) is finished before anything is published.
    void finish_compromise(State& st, bool& forgot);
    Outcome enroll_fresh(State& st, std::stop_token stop);
    Outcome renew_with(State& st, const identity::IdentityPtr& current, bool rekey,
                       std::stop_token stop);
    void retire_due(State& st);
    const Instance& instance() const;
    std::string missing_key() const;
    // Saves the CKA_ID of the key about to be generated as state.pending_key (start-up
    // removes every object with it unless the state references it); returns the raw id.
    std::string record_key_intent(State& st);
    // Clears the pending key (after the key was destroyed, or never made).
    void drop_key_intent(State& st, const std::string& id) noexcept;
    void schedule_next(const identity::IdentityPtr& id, bool failed);
    // Persists the outcome of an attempt (state.last_renewal), so status keeps it across
    // restarts. Never throws.
    void remember_outcome(const Outcome& out);
    void loop(std::stop_token stop);

    mutable std::mutex mu_;  // guards everything below but the thread
    std::condition_variable_any cv_;
    config::Config cfg_;
    std::shared_ptr<pkcs11::ProviderContext> provider_;
    identity::IdentityStore& identities_;
    AttemptHook on_attempt_;
    StateStore store_;
    std::optional<State> state_;  // last persisted state (renewer thread + start_up only)
    std::deque<Job> queue_;
    Status status_;
    Backoff backoff_;
    std::mt19937_64 rng_{std::random_device{}()};
    // Retired keys whose old identity may still be in use (renewer thread only): a key is
    // destroyed after its grace period once no connection holds that identity any more, or
    // at the latest one more grace period later.
    std::map<std::string, std::weak_ptr<const identity::Identity>> retired_identities_;
    bool retire_postponed_ = false;
    // Retired keys whose destruction failed (renewer thread only): when to try again, and the
    // wait after that (doubling, capped), so that a token refusing C_DestroyObject is asked
    // again in seconds to minutes, not in a loop.
    struct RetireRetry {
        Clock::time_point at;
        std::chrono::seconds delay;
    };
    std::map<std::string, RetireRetry> retire_retry_;
    std::optional<Instance> instance_;  // set by start_up()
    std::string missing_key_;           // id hex of the current key, when it vanished
    // Whether the state file may be written with an outcome: not while it is a corrupt file
    // start-up left alone and nothing has been saved over it yet.
    bool persist_outcome_ = true;
    bool reenroll_ = false;  // key_gone(): enroll anew on the renewer thread
    std::jthread thread_;
};

}  // namespace mtls::renewal
