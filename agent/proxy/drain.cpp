#include "agent/proxy/drain.hpp"

#include <map>
#include <utility>
#include <vector>

namespace mtls::proxy {

struct DrainState {
    struct Entry {
        std::function<void()> cut;
        std::function<bool()> has_input;
        bool busy = false;
        bool cut_done = false;
    };
    std::map<std::uint64_t, Entry> members;
    std::uint64_t next_id = 1;
    bool draining = false;
    std::function<void()> on_empty;

    // Cuts the members `pick` selects; the cut functions may end sessions (and so erase
    // members) only later, on their own coroutines, but are called on a copy of the ids.
    template <class Pick>
    std::size_t cut_where(Pick pick) {
        std::vector<std::uint64_t> ids;
        for (const auto& [id, e] : members)
            if (!e.cut_done && pick(e)) ids.push_back(id);
        std::size_t n = 0;
        for (auto id : ids) {
            auto it = members.find(id);
            if (it == members.end() || it->second.cut_done) continue;
            it->second.cut_done = true;
            if (it->second.busy) ++n;
            auto cut = it->second.cut;  // a copy: the member may go away inside it
            if (cut) cut();
        }
        return n;
    }

    void maybe_empty() {
        if (!draining || !members.empty() || !on_empty) return;
        auto f = std::exchange(on_empty, nullptr);
        f();
    }
};

Drain::Member::Member(Drain& drain, std::function<void()> cut, std::function<bool()> has_input)
    : state_(drain.state_) {
    id_ = state_->next_id++;
    state_->members.emplace(id_,
                            DrainState::Entry{std::move(cut), std::move(has_input), false, false});
}

Drain::Member::~Member() {
    state_->members.erase(id_);
    state_->maybe_empty();
}

void Drain::Member::busy(bool b) {
    auto it = state_->members.find(id_);
    if (it == state_->members.end()) return;
    it->second.busy = b;
}

Drain::Drain() : state_(std::make_shared<DrainState>()) {}

Drain::~Drain() {
    // Sessions that outlive the proxy (destroyed with the io_context) must not call back.
    state_->on_empty = nullptr;
    state_->draining = false;
    for (auto& [id, e] : state_->members) {
        e.cut = nullptr;
        e.has_input = nullptr;
    }
}

bool Drain::draining() const {
    return state_->draining;
}

std::size_t Drain::begin(std::function<void()> on_empty) {
    state_->draining = true;
    state_->on_empty = std::move(on_empty);
    // An idle connection the app already wrote to holds a request (or its start): it is
    // served as one in flight — cut_all() still ends it should it not complete in time.
    for (auto& [id, e] : state_->members)
        if (!e.busy && e.has_input && e.has_input()) e.busy = true;
    state_->cut_where([](const DrainState::Entry& e) { return !e.busy; });
    const std::size_t n = in_flight();
    state_->maybe_empty();
    return n;
}

std::size_t Drain::cut_all() {
    return state_->cut_where([](const DrainState::Entry&) { return true; });
}

std::size_t Drain::open() const {
    return state_->members.size();
}

std::size_t Drain::in_flight() const {
    std::size_t n = 0;
    for (const auto& [id, e] : state_->members)
        if (e.busy) ++n;
    return n;
}

}  // namespace mtls::proxy
