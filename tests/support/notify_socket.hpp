// Test helper: an AF_UNIX SOCK_DGRAM socket standing in for systemd's NOTIFY_SOCKET, so a
// test can read what the agent tells the service manager (sd_notify(3)): READY=1, STATUS=…,
// WATCHDOG=1, RELOADING=1, STOPPING=1.
//
//   NotifySocket n(dir.path() / "notify.sock");
//   agent.start({{"NOTIFY_SOCKET", n.path().string()}});
//   ASSERT_TRUE(n.wait_for([](const std::string& l) { return l == "READY=1"; }, 30s));
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace mtls::test {

// An AF_UNIX SOCK_DGRAM socket standing in for systemd's NOTIFY_SOCKET (mode 0666 so an agent
// running under another uid can write to it; parent dir must be searchable).
class NotifySocket {
  public:
    explicit NotifySocket(std::filesystem::path path);
    ~NotifySocket();  // closes and unlinks
    NotifySocket(const NotifySocket&) = delete;
    NotifySocket& operator=(const NotifySocket&) = delete;

    const std::filesystem::path& path() const;
    // Reads datagrams until one holds a line (datagrams are split on '\n') for which pred is
    // true or the deadline passes; returns that line. Every line read is kept.
    // Lines are looked at in order from just after the line the previous wait_for returned
    // (so waiting for a second READY=1 does not return the first one, while a line that came
    // in the same datagram as the previous match is still seen); lines() has them all.
    std::optional<std::string> wait_for(const std::function<bool(const std::string&)>& pred,
                                        std::chrono::milliseconds deadline);
    std::vector<std::string> lines();  // all lines so far (drains pending first)

  private:
    // Reads what is pending (waiting up to `wait` for the first datagram); appends its lines
    // to lines_ and returns how many lines were added.
    std::size_t read_pending(std::chrono::milliseconds wait);

    std::filesystem::path path_;
    int fd_ = -1;
    std::vector<std::string> lines_;
    std::size_t next_ = 0;  // the first line the next wait_for looks at
};

}  // namespace mtls::test
