#include "agent/proxy/tls_stream.hpp"

#include "agent/net/asio_ssl.hpp"
#include "common/ossl_error.hpp"

#include <openssl/err.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace mtls::proxy {
namespace {
// Writes of several buffers up to this size are copied into one TLS record.
constexpr std::size_t kGatherMax = 16 * 1024;
// Ciphertext read per system call: up to one full TLS record (memory per pooled connection).
constexpr std::size_t kStagingSize = 16 * 1024 + 256 + 5;

net::error_code sys_error(int e) {
    return {e, boost::system::system_category()};
}

// SSL_get_error needs an empty error queue before the call; peeking is cheaper than
// clearing all slots every time.
void clear_errors() {
    if (ERR_peek_error() != 0) ERR_clear_error();
}
}  // namespace

TlsStream::TlsStream(const net::asio::any_io_executor& ex) : ByteStream(ex), socket_(ex) {}

TlsStream::~TlsStream() {
    if (ssl_) BIO_set_data(SSL_get_rbio(ssl_.get()), nullptr);
}

// --- the BIO between OpenSSL and the socket ---------------------------------------------

BIO_METHOD* TlsStream::bio_method() {
    static const ossl::BioMethod method = [] {
        ossl::BioMethod m(BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "mtls-socket"));
        if (!m || BIO_meth_set_write_ex(m.get(), &TlsStream::bio_write) != 1 ||
            BIO_meth_set_read_ex(m.get(), &TlsStream::bio_read) != 1 ||
            BIO_meth_set_ctrl(m.get(), &TlsStream::bio_ctrl) != 1 ||
            BIO_meth_set_create(m.get(), &TlsStream::bio_create) != 1)
            throw std::runtime_error("cannot create the socket BIO method: " +
                                     ossl::drain_errors());
        return m;
    }();
    return method.get();
}

int TlsStream::bio_create(BIO* bio) {
    BIO_set_init(bio, 1);
    return 1;
}

// Writes go straight to the socket.
int TlsStream::bio_write(BIO* bio, const char* data, std::size_t len, std::size_t* written) {
    BIO_clear_retry_flags(bio);
    auto* self = static_cast<TlsStream*>(BIO_get_data(bio));
    if (self == nullptr) return 0;
    ssize_t n = ::send(self->socket_.native_handle(), data, len, MSG_NOSIGNAL);
    if (n >= 0) {
        *written = static_cast<std::size_t>(n);
        return 1;
    }
    self->last_errno_ = errno;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) BIO_set_retry_write(bio);
    return 0;
}

// Reads come from the staging buffer; empty: retry (the stream fills it), or EOF.
int TlsStream::bio_read(BIO* bio, char* data, std::size_t len, std::size_t* read) {
    BIO_clear_retry_flags(bio);
    auto* self = static_cast<TlsStream*>(BIO_get_data(bio));
    if (self == nullptr) return 0;
    std::size_t avail = self->staged_end_ - self->staged_begin_;
    if (avail == 0) {
        if (!self->eof_) BIO_set_retry_read(bio);
        return 0;
    }
    std::size_t n = std::min(len, avail);
    std::memcpy(data, self->staging_.get() + self->staged_begin_, n);
    self->staged_begin_ += n;
    if (self->staged_begin_ == self->staged_end_) self->staged_begin_ = self->staged_end_ = 0;
    *read = n;
    return 1;
}

long TlsStream::bio_ctrl(BIO* bio, int cmd, long, void*) {
    switch (cmd) {
        case BIO_CTRL_FLUSH:
            return 1;
        case BIO_CTRL_EOF: {
            auto* self = static_cast<TlsStream*>(BIO_get_data(bio));
            return self != nullptr && self->eof_ && self->staged_begin_ == self->staged_end_ ? 1
                                                                                             : 0;
        }
        default:
            return 0;
    }
}

// --- connect and handshake ------------------------------------------------------------

net::awaitable<void> TlsStream::connect(const net::tcp::resolver::results_type& endpoints,
                                        net::error_code& ec) {
    ec = net::asio::error::host_not_found;
    for (const auto& entry : endpoints) {
        net::error_code ignored;
        socket_.close(ignored);
        begin_wait();
        co_await socket_.async_connect(entry.endpoint(), net::use_ec(ec));
        end_wait(ec);
        if (!ec || ec == net::beast::error::timeout) co_return;
    }
}

bool TlsStream::attach(SSL_CTX* ctx, std::string& error) {
    ossl::Ssl ssl(SSL_new(ctx));
    BIO* bio = ssl ? BIO_new(bio_method()) : nullptr;
    if (!ssl || bio == nullptr) {
        error = ossl::drain_errors();
        return false;
    }
    BIO_set_data(bio, this);
    SSL_set_bio(ssl.get(), bio, bio);  // the SSL owns the BIO now
    SSL_set_mode(ssl.get(), SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_set_options(ssl.get(), SSL_OP_NO_RENEGOTIATION);
    SSL_set_connect_state(ssl.get());
    if (!staging_) staging_.reset(new char[kStagingSize]);
    ssl_ = std::move(ssl);
    return true;
}

net::awaitable<void> TlsStream::handshake(net::error_code& ec) {
    for (;;) {
        Need need = call([](SSL* ssl) { return SSL_do_handshake(ssl); }, ec);
        if (need == Need::nothing) co_return;
        co_await satisfy(need, ec);
        if (ec) co_return;
    }
}

// --- reads and writes -----------------------------------------------------------------

TlsStream::Need TlsStream::classify(int ret, net::error_code& ec) {
    ec = {};
    if (ret == 1) return Need::nothing;
    switch (SSL_get_error(ssl_.get(), ret)) {
        case SSL_ERROR_WANT_READ:
            ec = net::asio::error::would_block;
            return Need::read;
        case SSL_ERROR_WANT_WRITE:
            ec = net::asio::error::would_block;
            return Need::write;
        case SSL_ERROR_ZERO_RETURN:
            ec = net::asio::error::eof;  // close_notify
            return Need::nothing;
        case SSL_ERROR_SYSCALL:
            ec = last_errno_ != 0 ? sys_error(last_errno_)
                                  : net::error_code(net::ssl::error::stream_truncated);
            return Need::nothing;
        case SSL_ERROR_SSL: {
            unsigned long e = ERR_peek_error();
            if (ERR_GET_LIB(e) == ERR_LIB_SSL &&
                ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
                ERR_clear_error();
                ec = net::ssl::error::stream_truncated;  // EOF without close_notify
                return Need::nothing;
            }
            e = ERR_get_error();
            ec = {static_cast<int>(e), net::asio::error::get_ssl_category()};
            return Need::nothing;
        }
        default:
            ec = sys_error(EIO);
            return Need::nothing;
    }
}

template <class Op>
TlsStream::Need TlsStream::call(Op op, net::error_code& ec) {
    if (!ssl_ || !socket_.is_open()) {
        ec = net::asio::error::bad_descriptor;
        return Need::nothing;
    }
    clear_errors();
    last_errno_ = 0;
    return classify(op(ssl_.get()), ec);
}

net::awaitable<void> TlsStream::satisfy(Need need, net::error_code& ec) {
    ec = {};
    if (need == Need::write) {
        begin_wait();
        co_await socket_.async_wait(net::tcp::socket::wait_write, net::use_ec(ec));
        end_wait(ec);
        co_return;
    }
    net::asio::mutable_buffer room;
    if (!begin_fill(room, ec)) co_return;
    std::size_t n = co_await socket_.async_read_some(room, net::use_ec(ec));
    end_fill(n, ec);
}

bool TlsStream::begin_fill(net::asio::mutable_buffer& room, net::error_code& ec) {
    ec = {};
    if (filling_) {
        // Only a write can get here while a read fills the buffer: OpenSSL wants to read
        // inside a write, which only renegotiation does (refused by SSL_OP_NO_RENEGOTIATION).
        ec = net::asio::error::operation_not_supported;
        return false;
    }
    if (eof_) {
        ec = net::ssl::error::stream_truncated;
        return false;
    }
    room = staging_room();
    if (room.size() == 0) {  // cannot happen: OpenSSL takes what is staged before it asks
        ec = net::asio::error::no_buffer_space;
        return false;
    }
    filling_ = true;
    begin_wait();
    return true;
}

void TlsStream::end_fill(std::size_t n, net::error_code& ec) {
    end_wait(ec);
    filling_ = false;
    if (ec == net::asio::error::eof) {
        eof_ = true;  // OpenSSL sees it on its next read: close_notify or a truncation
        ec = {};
        return;
    }
    if (!ec) staged_end_ += n;
}

std::size_t TlsStream::try_read(net::asio::mutable_buffer b, net::error_code& ec) {
    for (int fills = 0;; ++fills) {
        std::size_t n = 0;
        Need need = Need::read;
        if (fills == 0 && must_read_socket_first())
            // (The reuse check of every pooled connection gets here.)
            ec = net::asio::error::would_block;
        else
            need = call([&](SSL* ssl) { return SSL_read_ex(ssl, b.data(), b.size(), &n); }, ec);
        if (need != Need::read || fills > 0 || filling_ || eof_) return ec ? 0 : n;
        // Nothing staged: take what the socket has, without waiting (one recv).
        auto room = staging_room();
        ssize_t got = ::recv(socket_.native_handle(), room.data(), room.size(), MSG_DONTWAIT);
        if (got > 0)
            staged_end_ += static_cast<std::size_t>(got);
        else if (got == 0)
            eof_ = true;
        else {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                ec = sys_error(errno);  // reset, …
            return 0;                   // else would_block
        }
    }
}

bool TlsStream::must_read_socket_first() const {
    return ssl_ && socket_.is_open() && !filling_ && !eof_ && staged_begin_ == staged_end_ &&
           SSL_has_pending(ssl_.get()) == 0 && SSL_is_init_finished(ssl_.get()) == 1;
}

net::awaitable<std::size_t> TlsStream::read_some(net::asio::mutable_buffer b, net::error_code& ec) {
    // A response is read right after its request went out: mostly not there yet. The socket
    // is read in this frame, not in satisfy's (one coroutine frame less per response).
    if (net::asio::mutable_buffer room; must_read_socket_first() && begin_fill(room, ec)) {
        std::size_t got = co_await socket_.async_read_some(room, net::use_ec(ec));
        end_fill(got, ec);
        if (ec) {
            take_alert(ec);
            co_return 0;
        }
    }
    for (;;) {
        std::size_t n = 0;
        Need need = call([&](SSL* ssl) { return SSL_read_ex(ssl, b.data(), b.size(), &n); }, ec);
        if (need == Need::nothing) {
            if (ec) take_alert(ec);
            co_return ec ? 0 : n;
        }
        co_await satisfy(need, ec);
        if (ec) {
            take_alert(ec);
            co_return 0;
        }
    }
}

net::awaitable<std::size_t> TlsStream::write_some(std::span<const net::asio::const_buffer> bufs,
                                                  net::error_code& ec) {
    const void* data = bufs.front().data();
    std::size_t len = bufs.front().size();
    if (bufs.size() > 1) {
        std::size_t total = 0;
        for (const auto& b : bufs) total += b.size();
        if (total <= kGatherMax) {
            gather_.clear();
            for (const auto& b : bufs) gather_.append(static_cast<const char*>(b.data()), b.size());
            data = gather_.data();
            len = gather_.size();
        }
    }
    for (;;) {
        std::size_t n = 0;
        Need need = call([&](SSL* ssl) { return SSL_write_ex(ssl, data, len, &n); }, ec);
        if (need == Need::nothing) {
            if (ec) take_alert(ec);
            co_return ec ? 0 : n;
        }
        co_await satisfy(need, ec);
        if (ec) {
            take_alert(ec);
            co_return 0;
        }
    }
}

void TlsStream::take_alert(net::error_code& ec) {
    if (!ssl_ || !socket_.is_open() || filling_ ||
        ec.category() != boost::system::system_category() ||
        (ec.value() != EPIPE && ec.value() != ECONNRESET))
        return;
    // What the kernel still holds (data queued before a reset stays readable).
    for (auto room = staging_room(); room.size() > 0; room = staging_room()) {
        ssize_t got = ::recv(socket_.native_handle(), room.data(), room.size(), MSG_DONTWAIT);
        if (got <= 0) {
            if (got == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
                eof_ = true;
            break;
        }
        staged_end_ += static_cast<std::size_t>(got);
    }
    if (staged_end_ == staged_begin_) return;
    char scratch[512];
    std::size_t n = 0;
    net::error_code found;
    Need need =
        call([&](SSL* ssl) { return SSL_read_ex(ssl, scratch, sizeof scratch, &n); }, found);
    if (need == Need::nothing && received_alert(found) >= 0) ec = found;
}

int received_alert(const net::error_code& ec) {
    if (!ec || ec.category() != net::asio::error::get_ssl_category()) return -1;
    const auto e = static_cast<unsigned long>(ec.value());
    if (ERR_GET_LIB(e) != ERR_LIB_SSL) return -1;
    const int reason = ERR_GET_REASON(e);
    if (reason < SSL_AD_REASON_OFFSET || reason > SSL_AD_REASON_OFFSET + 255) return -1;
    return reason - SSL_AD_REASON_OFFSET;
}

std::string alert_name(int d) {
    switch (d) {
        case 0:
            return "close_notify";
        case 10:
            return "unexpected_message";
        case 20:
            return "bad_record_mac";
        case 22:
            return "record_overflow";
        case 40:
            return "handshake_failure";
        case 42:
            return "bad_certificate";
        case 43:
            return "unsupported_certificate";
        case 44:
            return "certificate_revoked";
        case 45:
            return "certificate_expired";
        case 46:
            return "certificate_unknown";
        case 47:
            return "illegal_parameter";
        case 48:
            return "unknown_ca";
        case 49:
            return "access_denied";
        case 50:
            return "decode_error";
        case 51:
            return "decrypt_error";
        case 70:
            return "protocol_version";
        case 71:
            return "insufficient_security";
        case 80:
            return "internal_error";
        case 86:
            return "inappropriate_fallback";
        case 90:
            return "user_canceled";
        case 109:
            return "missing_extension";
        case 110:
            return "unsupported_extension";
        case 112:
            return "unrecognized_name";
        case 113:
            return "bad_certificate_status_response";
        case 115:
            return "unknown_psk_identity";
        case 116:
            return "certificate_required";
        case 120:
            return "no_application_protocol";
        default:
            return "alert " + std::to_string(d);
    }
}

net::asio::mutable_buffer TlsStream::staging_room() {
    return {staging_.get() + staged_end_, kStagingSize - staged_end_};
}

bool TlsStream::has_unread() const {
    return staged_end_ != staged_begin_ || (ssl_ && SSL_has_pending(ssl_.get()) != 0);
}

void TlsStream::cancel() {
    net::error_code ec;
    socket_.cancel(ec);
}

void TlsStream::close() {
    net::error_code ec;
    socket_.shutdown(net::tcp::socket::shutdown_both, ec);
    socket_.close(ec);
}

}  // namespace mtls::proxy
