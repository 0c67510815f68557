#include "agent/daemon/notifier.hpp"

#include "common/log.hpp"

#include <systemd/sd-daemon.h>

#include <cstdlib>
#include <ctime>

namespace mtls::daemon {

Notifier::Verdict Notifier::verdict(const nlohmann::json& doc, bool has_identity) {
    Verdict v;
    const std::string state = doc.value("state", "failing");
    std::string reasons;
    if (auto it = doc.find("reasons"); it != doc.end() && it->is_array())
        for (const auto& r : *it)
            if (r.is_string()) reasons += (reasons.empty() ? "" : "; ") + r.get<std::string>();
    std::string last_result = "never";
    if (auto r = doc.find("renewal"); r != doc.end() && r->is_object())
        last_result = r->value("last_result", "never");
    if (!has_identity && last_result == "never") {
        v.status = "enrolling";
    } else if (state == "healthy") {
        v.status = "serving";
    } else {
        v.status =
            state + ": " + (reasons.empty() ? std::string("see mtls-agentctl status") : reasons);
    }
    // Serving: an identity is published (the listeners are up before the loop runs); a
    // degraded or even failing verdict with one still answers calls.
    v.serving = has_identity;
    return v;
}

Notifier::Notifier() {
    const char* sock = std::getenv("NOTIFY_SOCKET");
    enabled_ = sock != nullptr && *sock != '\0';
    std::uint64_t usec = 0;
    if (enabled_ && sd_watchdog_enabled(0, &usec) > 0 && usec > 0)
        watchdog_ = std::chrono::microseconds(usec);
}

Notifier::~Notifier() = default;

void Notifier::send(const std::string& text) {
    if (!enabled_) return;
    int rc = sd_notify(0, text.c_str());
    if (rc < 0) log::debug("agent.notify_failed", {{"error", -rc}});
}

void Notifier::status(const std::string& text) {
    std::string clean = text;
    for (auto& c : clean)
        if (c == '\n' || c == '\r') c = ' ';
    if (last_status_ && *last_status_ == clean) return;
    last_status_ = clean;
    send("STATUS=" + clean);
    log::info("agent.status", {{"status", clean}});
}

void Notifier::apply(const Verdict& v) {
    if (stopping_) return;
    if (v.serving && !ready_sent_) {
        // READY=1 before the STATUS= that says serving.
        ready_sent_ = true;
        send("READY=1");
        log::info("agent.ready_notified");
    }
    status(v.status);
}

void Notifier::run(net::asio::io_context& io, std::function<Verdict()> compute) {
    // Without a service manager to tell, the verdict (a whole status document) is not
    // recomputed every second for nothing.
    if (!enabled_) return;
    compute_ = std::move(compute);
    status_timer_ = std::make_unique<net::asio::steady_timer>(io);
    tick();
    if (watchdog_) {
        watchdog_timer_ = std::make_unique<net::asio::steady_timer>(io);
        ping();
    }
}

void Notifier::stop() {
    // The timers go with their waits (aborted); a handler already queued sees them gone.
    status_timer_.reset();
    watchdog_timer_.reset();
}

void Notifier::tick() {
    try {
        if (compute_) apply(compute_());
    } catch (const std::exception& e) {
        log::warn("agent.status_failed", {{"error", e.what()}});
    }
    status_timer_->expires_after(std::chrono::seconds(1));
    status_timer_->async_wait([this](net::error_code ec) {
        if (!ec && status_timer_) tick();
    });
}

void Notifier::ping() {
    send("WATCHDOG=1");
    watchdog_timer_->expires_after(*watchdog_ / 2);
    watchdog_timer_->async_wait([this](net::error_code ec) {
        if (!ec && watchdog_timer_) ping();
    });
}

void Notifier::reloading() {
    if (stopping_) return;
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    const auto usec = static_cast<std::uint64_t>(ts.tv_sec) * 1000000u +
                      static_cast<std::uint64_t>(ts.tv_nsec) / 1000u;
    send("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec));
}

void Notifier::reloaded() {
    if (ready_sent_ && !stopping_) send("READY=1");
}

void Notifier::stopping() {
    stopping_ = true;
    send("STOPPING=1\nSTATUS=stopping");
    last_status_ = "stopping";
}

}  // namespace mtls::daemon
