#include "revocation/process_checker.hpp"

#include <mutex>

namespace mtls::revocation {
namespace {

std::mutex& process_checker_mu() {
    static std::mutex mu;
    return mu;
}

std::shared_ptr<Checker>& process_checker_slot() {
    static std::shared_ptr<Checker> slot;
    return slot;
}

}  // namespace

std::shared_ptr<Checker> process_checker() {
    std::lock_guard lk(process_checker_mu());
    auto& slot = process_checker_slot();
    if (!slot) slot = std::make_shared<Checker>(Settings{});
    return slot;
}

void configure_process_checker(const Settings& settings) {
    std::shared_ptr<Checker> c;
    {
        std::lock_guard lk(process_checker_mu());
        auto& slot = process_checker_slot();
        if (!slot) {
            slot = std::make_shared<Checker>(settings);
            return;
        }
        c = slot;
    }
    c->update(settings);
}

}  // namespace mtls::revocation
