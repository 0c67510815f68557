// Telling systemd the truth (sd_notify(3)): the service manager learns what the agent is
// doing from the same verdict `mtls-agentctl status` shows (health.hpp).
//
//   STATUS=enrolling | serving | degraded: REASONS | failing: REASONS   sent on change
//   READY=1                 once, when serving with an identity and the listeners are up
//   RELOADING=1 + MONOTONIC_USEC=…, then READY=1    around a reload (SIGHUP, admin reload)
//   STOPPING=1              at SIGTERM/SIGINT
//   WATCHDOG=1              at half of WATCHDOG_USEC, from the event loop (a stuck loop
//                           stops the pings, and systemd restarts the agent)
//
// Without NOTIFY_SOCKET every call is a no-op. Used on the io_context thread only (and
// before the loop runs).
//
//   Notifier n;
//   n.status("enrolling");
//   …
//   n.run(io, [&] { return Notifier::verdict(status_doc(), identities.current() != nullptr); });
#pragma once

#include "agent/net/asio.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace mtls::daemon {

class Notifier {
  public:
    // What the agent is doing now: the STATUS= text and whether it serves (READY=1).
    struct Verdict {
        std::string status;
        bool serving = false;
    };
    // The verdict for a status document (build_status): "serving" when healthy,
    // "degraded: …" / "failing: …" with the reasons joined by "; ", and "enrolling" while
    // there is no identity and no enrollment attempt has finished yet.
    static Verdict verdict(const nlohmann::json& status_doc, bool has_identity);

    Notifier();
    ~Notifier();
    Notifier(const Notifier&) = delete;
    Notifier& operator=(const Notifier&) = delete;

    // Whether NOTIFY_SOCKET is set (everything below is a no-op otherwise).
    bool enabled() const { return enabled_; }
    // The watchdog interval systemd expects pings within (WATCHDOG_USEC), if any.
    std::optional<std::chrono::microseconds> watchdog_interval() const { return watchdog_; }

    // STATUS=<text>, only when it differs from the last one sent (newlines become spaces).
    void status(const std::string& text);
    // Applies a verdict: its STATUS (on change) and READY=1 the first time it serves.
    void apply(const Verdict& v);
    // Starts the timers on `io`: the verdict recomputed once a second (and right away),
    // and the watchdog pings; neither without NOTIFY_SOCKET. stop() destroys them: call it before
    // `io` goes (the Notifier may be older than the io_context).
    void run(net::asio::io_context& io, std::function<Verdict()> compute);
    void stop();

    void reloading();  // RELOADING=1 with MONOTONIC_USEC=<CLOCK_MONOTONIC in µs>
    void reloaded();   // READY=1 again (only if it was sent before: never too early)
    void stopping();   // STOPPING=1 (and STATUS=stopping)
    bool ready_sent() const { return ready_sent_; }

  private:
    void send(const std::string& text);
    void tick();
    void ping();

    bool enabled_ = false;
    std::optional<std::chrono::microseconds> watchdog_;
    std::optional<std::string> last_status_;
    bool ready_sent_ = false;
    bool stopping_ = false;
    std::function<Verdict()> compute_;
    std::unique_ptr<net::asio::steady_timer> status_timer_, watchdog_timer_;
};

}  // namespace mtls::daemon
