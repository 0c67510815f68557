#include "agent/identity/identity_store.hpp"

#include <stdexcept>
#include <utility>
#include <vector>

namespace mtls::identity {

IdentityPtr IdentityStore::current() const {
    std::lock_guard lock(mu_);
    return current_;
}

void IdentityStore::publish(IdentityPtr next) {
    if (!next) throw std::invalid_argument("IdentityStore::publish: null identity (use clear())");
    IdentityPtr before;
    {
        std::lock_guard lock(mu_);
        if (next->generation() <= highest_generation_)
            throw std::invalid_argument("IdentityStore::publish: generation " +
                                        std::to_string(next->generation()) + " is not newer than " +
                                        std::to_string(highest_generation_));
        highest_generation_ = next->generation();
        burn_note_.clear();
        before = std::exchange(current_, next);
    }
    notify(next, before);
}

void IdentityStore::clear() {
    IdentityPtr before;
    {
        std::lock_guard lock(mu_);
        before = std::exchange(current_, nullptr);
    }
    if (before) notify(nullptr, before);
}

IdentityPtr IdentityStore::burn(std::string note) {
    IdentityPtr before;
    {
        std::lock_guard lock(mu_);
        burn_note_ = std::move(note);
        before = std::exchange(current_, nullptr);
        burnt_through_.store(highest_generation_);
    }
    if (before) notify(nullptr, before);
    return before;
}

std::string IdentityStore::burn_note() const {
    std::lock_guard lock(mu_);
    return burn_note_;
}

std::uint64_t IdentityStore::next_generation() const {
    std::lock_guard lock(mu_);
    return highest_generation_ + 1;
}

IdentityStore::Subscription IdentityStore::subscribe(Listener listener) {
    std::lock_guard lock(mu_);
    std::uint64_t id = next_listener_++;
    listeners_.emplace(id, std::move(listener));
    return Subscription(alive_, this, id);
}

void IdentityStore::Subscription::reset() {
    if (auto owner = owner_.lock()) store_->unsubscribe(id_);
    owner_.reset();
    store_ = nullptr;
}

void IdentityStore::unsubscribe(std::uint64_t id) const {
    std::lock_guard lock(mu_);
    listeners_.erase(id);
}

void IdentityStore::notify(const IdentityPtr& now, const IdentityPtr& before) {
    std::vector<Listener> copy;
    {
        std::lock_guard lock(mu_);
        for (const auto& [id, l] : listeners_) copy.push_back(l);
    }
    for (const auto& l : copy) l(now, before);
}

}  // namespace mtls::identity
