// IdentityStore: the one shared mutable thing of the agent — the current Identity snapshot
// behind a mutex-guarded shared_ptr (readers copy the pointer: one uncontended lock).
// Subscribers are told after each publish (on the publishing thread; post to your own
// executor if you need to).
#pragma once

#include "agent/identity/identity.hpp"

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

namespace mtls::identity {

class IdentityStore {
  public:
    using Listener = std::function<void(const IdentityPtr& now, const IdentityPtr& before)>;

    IdentityPtr current() const;

    // Makes `next` current. Its generation must be greater than the current one's (a
    // rotation never goes back); throws std::invalid_argument otherwise.
    void publish(IdentityPtr next);

    // Drops the current identity (e.g. its certificate expired and renewal failed): requests
    // then get 503 no_identity until the next publish.
    void clear();

    // The current identity's key is burnt (declared compromised, or its certificate was
    // revoked): it is dropped as by clear(), and every identity of its generation or older
    // is unusable from now on (usable() says no), even one a request already holds. The
    // listeners are told (now = null, before = the burnt one). Returns the burnt identity
    // (null when there was none; the floor is raised to the highest generation anyway).
    IdentityPtr burn(std::string note);
    // While no identity was published since the last burn(): its note (what happened and
    // what the agent does, for the error a request gets); "" otherwise.
    std::string burn_note() const;
    // False for an identity of a burnt generation (see burn()). Lock-free.
    bool usable(const Identity& id) const { return id.generation() > burnt_through_.load(); }
    std::uint64_t burnt_through() const { return burnt_through_.load(); }

    // A generation number greater than any published so far.
    std::uint64_t next_generation() const;

    // Returns a handle; the listener stays registered while the handle lives.
    class Subscription {
      public:
        Subscription() = default;
        Subscription(Subscription&&) noexcept = default;
        Subscription& operator=(Subscription&& o) noexcept {
            if (this != &o) {
                reset();
                owner_ = std::move(o.owner_);
                store_ = o.store_;
                id_ = o.id_;
            }
            return *this;
        }
        ~Subscription() { reset(); }
        void reset();

      private:
        friend class IdentityStore;
        Subscription(std::weak_ptr<void> owner, const IdentityStore* store, std::uint64_t id)
            : owner_(std::move(owner)), store_(store), id_(id) {}
        std::weak_ptr<void> owner_;
        const IdentityStore* store_ = nullptr;
        std::uint64_t id_ = 0;
    };
    [[nodiscard]] Subscription subscribe(Listener listener);

  private:
    void unsubscribe(std::uint64_t id) const;
    void notify(const IdentityPtr& now, const IdentityPtr& before);

    mutable std::mutex mu_;
    IdentityPtr current_;
    std::uint64_t highest_generation_ = 0;
    std::atomic<std::uint64_t> burnt_through_{0};
    std::string burn_note_;  // until the next publish
    mutable std::map<std::uint64_t, Listener> listeners_;
    std::uint64_t next_listener_ = 1;
    std::shared_ptr<int> alive_ = std::make_shared<int>(0);  // lets Subscriptions outlive us
};

}  // namespace mtls::identity
