#include "agent/proxy/upstream_connection.hpp"

#include "agent/proxy/revocation_gate.hpp"
#include "common/ossl_error.hpp"

namespace mtls::proxy {

UpstreamConnection::UpstreamConnection(const net::asio::any_io_executor& ex,
                                       std::shared_ptr<TlsClientContext> tls)
    : tls_(std::move(tls)), stream_(ex) {}

UpstreamConnection::~UpstreamConnection() {
    delist();
}

net::awaitable<ProxyError> UpstreamConnection::open(
    const net::tcp::resolver::results_type& endpoints, const UpstreamTarget& target,
    const config::Route::Timeouts& timeouts) {
    net::error_code ec;
    stream_.expires_after(timeouts.connect);
    co_await stream_.connect(endpoints, ec);
    if (ec == net::beast::error::timeout)
        co_return upstream_timeout("connect to " + target.authority + " timed out after " +
                                   std::to_string(timeouts.connect.count()) + " ms");
    if (ec)
        co_return upstream_connect("connect to " + target.authority + " failed: " + ec.message());
    stream_.socket().set_option(net::tcp::no_delay(true), ec);

    std::string err;
    if (!stream_.attach(tls_->asio_context().native_handle(), err) ||
        !tls_->prepare(stream_.ssl(), err))
        co_return upstream_tls("TLS setup for " + target.authority + ": " + err);
    stream_.expires_after(timeouts.handshake);
    co_await stream_.handshake(ec);
    if (ec == net::beast::error::timeout)
        co_return upstream_timeout("TLS handshake with " + target.authority + " timed out after " +
                                   std::to_string(timeouts.handshake.count()) + " ms");
    if (int alert = received_alert(ec); alert >= 0) {
        ossl::drain_errors();
        co_return upstream_tls_alert(target.authority, alert_name(alert));
    }
    if (ec) co_return upstream_tls(tls_->describe_failure(stream_.ssl(), ec.message()));
    stream_.expires_never();
    resumed_ = SSL_session_reused(stream_.ssl()) == 1;
    if (tls_->revocation() != config::RevocationPolicy::off) {
        // Off the worker's thread when a fetch is needed; the connection waits, nothing else
        // does.
        ProxyError refused = co_await RevocationGate::instance().check(
            stream_.ssl(), tls_->route_name(), tls_->revocation(), peer_chain_);
        if (refused) co_return refused;
    }
    co_return ProxyError{};
}

UpstreamConnection::Leftover UpstreamConnection::take_leftover(bool ask_socket) {
    if (buffer_.size() != 0) return Leftover::data;  // read past the end of the response
    if (!stream_.socket().is_open()) return Leftover::closed;
    if (!ask_socket && !stream_.has_unread()) return Leftover::nothing;
    char scratch[512];
    // A record split across segments may need a second recv; more than that is not waited
    // for.
    for (int tries = 0; tries < 2; ++tries) {
        net::error_code ec;
        if (stream_.try_read(net::asio::buffer(scratch), ec) > 0) return Leftover::data;
        if (ec != net::asio::error::would_block) return Leftover::closed;
        if (!stream_.has_unread()) return Leftover::nothing;
    }
    return Leftover::partial;
}

bool UpstreamConnection::revoked_now() const {
    // Only hard-fail refuses a revoked chain; soft-fail said so when the connection was made.
    return tls_->revocation() == config::RevocationPolicy::hard_fail && !peer_chain_.empty() &&
           RevocationGate::instance().revoked_now(peer_chain_);
}

void UpstreamConnection::close() {
    stream_.close();
}

}  // namespace mtls::proxy
