#include "agent/net/conn_caps.hpp"

#include <mutex>
#include <unordered_map>

namespace mtls::net {

struct ConnectionCaps::Slot::State {
    std::mutex mu;
    std::size_t total = 0;
    std::size_t unprivileged = 0;
    std::unordered_map<std::string, std::size_t> by_caller;
};

ConnectionCaps::Slot& ConnectionCaps::Slot::operator=(Slot&& o) noexcept {
    if (this != &o) {
        release();
        state_ = std::move(o.state_);
        key_ = std::move(o.key_);
        privileged_ = o.privileged_;
    }
    return *this;
}

ConnectionCaps::Slot::~Slot() {
    release();
}

void ConnectionCaps::Slot::release() {
    if (!state_) return;
    {
        std::lock_guard lock(state_->mu);
        --state_->total;
        if (!privileged_) --state_->unprivileged;
        auto it = state_->by_caller.find(key_);
        if (it != state_->by_caller.end() && --it->second == 0) state_->by_caller.erase(it);
    }
    state_.reset();
}

ConnectionCaps::ConnectionCaps(Limits limits)
    : limits_(limits), state_(std::make_shared<Slot::State>()) {}

ConnectionCaps::Admission ConnectionCaps::admit(const std::string& caller, bool privileged) {
    Admission a;
    std::lock_guard lock(state_->mu);
    // Unprivileged callers together stay below total - reserved; privileged ones may use all.
    const std::size_t reserved = limits_.reserved < limits_.total ? limits_.reserved : 0;
    if (state_->total >= limits_.total ||
        (!privileged && state_->unprivileged >= limits_.total - reserved)) {
        a.refusal = Refusal::total;
        a.open = state_->total;
        return a;
    }
    auto it = state_->by_caller.find(caller);
    const std::size_t mine = it == state_->by_caller.end() ? 0 : it->second;
    if (!privileged && mine >= limits_.per_caller) {
        a.refusal = Refusal::per_caller;
        a.open = mine;
        return a;
    }
    ++state_->total;
    if (!privileged) ++state_->unprivileged;
    ++state_->by_caller[caller];
    a.open = state_->total;
    a.slot = Slot(state_, caller, privileged);
    return a;
}

std::size_t ConnectionCaps::open() const {
    std::lock_guard lock(state_->mu);
    return state_->total;
}

std::size_t ConnectionCaps::open_by(const std::string& caller) const {
    std::lock_guard lock(state_->mu);
    auto it = state_->by_caller.find(caller);
    return it == state_->by_caller.end() ? 0 : it->second;
}

}  // namespace mtls::net
