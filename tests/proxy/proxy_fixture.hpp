// Helpers for the proxy tests: a client identity signed by a sandbox CA, the proxy running
// on its own thread, and a plain HTTP/1.1 client over a real socket (raw bytes when the
// test needs to send what Beast would refuse to produce).
#pragma once

#include "agent/identity/identity_store.hpp"
#include "agent/net/asio.hpp"
#include "agent/proxy/proxy.hpp"
#include "agent/token/token_source.hpp"
#include "config/config.hpp"

#include <atomic>
#include <filesystem>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace mtls::proxytest {

namespace http = net::http;

// A fresh EC P-256 client certificate (CN = cn, clientAuth) issued by the CA whose
// issuing-ca.pem / issuing-ca.key live in ca_dir, with the issuing CA as chain.
identity::IdentityPtr issue_identity(const std::filesystem::path& ca_dir, const std::string& cn,
                                     std::uint64_t generation);

// base64 SHA-256 of the SubjectPublicKeyInfo of the first certificate in a PEM file.
std::string spki_pin_of(const std::filesystem::path& cert_pem);

// VmRSS / VmHWM of this process in KiB.
long proc_status_kib(const char* field);

// Token source for tests: hands out "test-token-<n>", counts calls.
class CountingTokens : public token::TokenSource {
  public:
    net::awaitable<token::TokenResult> get(const std::string& profile,
                                           identity::IdentityPtr id) override;
    void invalidate(const std::string& profile, const std::string& thumbprint) override;
    std::atomic<int> gets{0}, invalidations{0};
    std::atomic<bool> fail{false};
    std::string last_thumbprint() const {
        std::lock_guard lk(mu_);
        return last_thumbprint_;
    }

  private:
    mutable std::mutex mu_;
    std::string last_thumbprint_;
};

// The proxy on its own io_context thread.
class ProxyRunner {
  public:
    ProxyRunner(config::Listener listener, std::vector<config::Route> routes,
                identity::IdentityStore& ids, token::TokenSource* tokens);
    ~ProxyRunner();
    std::uint16_t port() const { return port_; }
    const proxy::ProxyStats& stats() const { return proxy_->stats(); }
    // Runs f(proxy) on the proxy's io_context thread (where reload, stop and the drain are
    // called) and returns when it has run.
    void on_io(const std::function<void(proxy::Proxy&)>& f);

  private:
    net::asio::io_context io_;
    // Runs until the destructor, also when nothing is left on io_ itself (with workers the
    // sessions run on the proxy's own threads; after stop_accepting() io_ would run dry).
    net::asio::executor_work_guard<net::asio::io_context::executor_type> work_{io_.get_executor()};
    std::unique_ptr<proxy::Proxy> proxy_;
    std::thread thread_;
    std::uint16_t port_ = 0;
};

// A keep-alive HTTP/1.1 client (TCP or Unix socket).
class Client {
  public:
    explicit Client(std::uint16_t port);
    explicit Client(const std::string& unix_path);
    http::response<http::string_body> request(
        http::verb method, const std::string& target, const std::string& body = "",
        std::vector<std::pair<std::string, std::string>> headers = {});
    // Sends raw bytes, reads one response (string body; HEAD responses need head_only).
    http::response<http::string_body> raw(const std::string& bytes, bool head_only = false);
    void send_raw(const std::string& bytes);
    http::response<http::string_body> read_response(bool head_only = false);
    // True when the proxy closed the connection (reads EOF within a deadline).
    bool closed_by_peer();
    net::asio::ip::tcp::socket& tcp() { return tcp_; }

  private:
    net::asio::io_context io_;
    net::asio::ip::tcp::socket tcp_{io_};
    net::unix_socket::socket unix_{io_};
    bool is_unix_ = false;
    net::beast::flat_buffer buf_;
    template <class F>
    auto with_stream(F&& f) {
        if (is_unix_) return f(unix_);
        return f(tcp_);
    }
};

}  // namespace mtls::proxytest
