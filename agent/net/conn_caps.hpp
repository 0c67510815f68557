// Connection caps for a listener: a total, a per-caller cap (uid on a Unix socket, address
// on TCP) and slots of the total that only privileged callers (root, the agent's own uid)
// may use, so that no other caller can lock them out. A Slot holds one admitted connection
// until it is destroyed; it may outlive the ConnectionCaps.
//
//   ConnectionCaps caps({.total = 448, .per_caller = 112});
//   auto a = caps.admit("uid:1000", false);
//   if (!a.slot) refuse(a.refusal);  // Refusal::total or Refusal::per_caller
#pragma once

#include <cstddef>
#include <memory>
#include <string>

namespace mtls::net {

class ConnectionCaps {
  public:
    struct Limits {
        std::size_t total = 0;       // all callers together
        std::size_t per_caller = 0;  // one caller (privileged callers are not held to it)
        std::size_t reserved = 0;    // unprivileged callers together hold at most total - reserved
    };
    enum class Refusal { none, total, per_caller };

    class Slot {
      public:
        Slot() = default;
        Slot(Slot&&) noexcept = default;
        Slot& operator=(Slot&& o) noexcept;
        Slot(const Slot&) = delete;
        Slot& operator=(const Slot&) = delete;
        ~Slot();
        explicit operator bool() const { return state_ != nullptr; }

      private:
        friend class ConnectionCaps;
        struct State;
        Slot(std::shared_ptr<State> s, std::string key, bool privileged)
            : state_(std::move(s)), key_(std::move(key)), privileged_(privileged) {}
        void release();
        std::shared_ptr<State> state_;
        std::string key_;
        bool privileged_ = false;
    };

    struct Admission {
        Slot slot;  // empty when refused
        Refusal refusal = Refusal::none;
        std::size_t open = 0;  // connections open (total or this caller's)
    };

    explicit ConnectionCaps(Limits limits);
    const Limits& limits() const { return limits_; }
    // New limits for the connections admitted from now on (a reload); open ones stay.
    void set_limits(Limits limits) { limits_ = limits; }

    Admission admit(const std::string& caller, bool privileged);
    std::size_t open() const;
    std::size_t open_by(const std::string& caller) const;

  private:
    Limits limits_;
    std::shared_ptr<Slot::State> state_;
};

}  // namespace mtls::net
