// The partner's side of a proxy session: TLS over a TCP socket with OpenSSL driven
// directly. Ciphertext comes in through Asio's speculative reads into one staging buffer
// that OpenSSL reads from (through a small BIO); it goes out with send(MSG_NOSIGNAL) from
// OpenSSL's own write buffer. No composed-operation machinery, no second buffer pair.
// TLS 1.2 renegotiation is refused (it would need a read inside a write).
#pragma once

#include "agent/proxy/byte_stream.hpp"
#include "common/ossl.hpp"

#include <memory>
#include <string>

namespace mtls::proxy {

class TlsStream final : public ByteStream {
  public:
    explicit TlsStream(const net::asio::any_io_executor& ex);
    ~TlsStream() override;

    net::tcp::socket& socket() { return socket_; }
    SSL* ssl() { return ssl_.get(); }

    // Connects to the first endpoint that answers (deadline as set before).
    net::awaitable<void> connect(const net::tcp::resolver::results_type& endpoints,
                                 net::error_code& ec);
    // Creates the TLS client state for `ctx` on the connected socket. false and `error` set
    // when OpenSSL refuses.
    bool attach(SSL_CTX* ctx, std::string& error);
    // The client handshake (deadline as set before). Errors: timeout, the socket's error,
    // or the OpenSSL error (asio's ssl category, as asio::ssl reports them).
    net::awaitable<void> handshake(net::error_code& ec);

    net::awaitable<std::size_t> read_some(net::asio::mutable_buffer b,
                                          net::error_code& ec) override;
    net::awaitable<std::size_t> write_some(std::span<const net::asio::const_buffer> bufs,
                                           net::error_code& ec) override;
    // Decrypts what is staged, or else what one non-blocking recv brings.
    std::size_t try_read(net::asio::mutable_buffer b, net::error_code& ec) override;
    void cancel() override;
    void close();

    // Bytes received that nobody has read yet (staged ciphertext or decrypted data).
    bool has_unread() const;

  private:
    // After the partner broke the connection off (EPIPE, ECONNRESET), the TLS alert it sent
    // first may still wait in the socket's receive queue: a TLS 1.3 server checks our
    // certificate after our side of the handshake is done, so its verdict (unknown_ca, …)
    // arrives while we write the request. Reads it, and replaces `ec` with it when found.
    void take_alert(net::error_code& ec);
    // Nothing staged, nothing decrypted in OpenSSL, the handshake done: an SSL_read could only
    // ask for more ciphertext, so a read goes to the socket first and skips that call.
    bool must_read_socket_first() const;
    enum class Need { nothing, read, write };
    // One SSL_* call `op(ssl)` on the open connection, classified.
    template <class Op>
    Need call(Op op, net::error_code& ec);
    // After an SSL_* call that returned `ret`: nothing when it succeeded or failed for good
    // (the error in `ec`), else what it waits for (ec = would_block).
    Need classify(int ret, net::error_code& ec);
    // Waits for what `need` says: more ciphertext in the staging buffer, or a writable socket.
    net::awaitable<void> satisfy(Need need, net::error_code& ec);
    // The two halves of a read into the staging buffer around the socket's async_read_some:
    // begin_fill gives the room (false with `ec` when no read can start), end_fill counts
    // what arrived (an EOF is kept for OpenSSL to see).
    bool begin_fill(net::asio::mutable_buffer& room, net::error_code& ec);
    void end_fill(std::size_t n, net::error_code& ec);
    // Free space after the staged bytes (bio_read empties the buffer to its start, so this
    // is all of it whenever OpenSSL asks for more).
    net::asio::mutable_buffer staging_room();

    static int bio_write(BIO* bio, const char* data, std::size_t len, std::size_t* written);
    static int bio_read(BIO* bio, char* data, std::size_t len, std::size_t* read);
    static long bio_ctrl(BIO* bio, int cmd, long num, void* ptr);
    static int bio_create(BIO* bio);
    static BIO_METHOD* bio_method();

    net::tcp::socket socket_;
    ossl::Ssl ssl_;
    std::unique_ptr<char[]> staging_;  // ciphertext read from the socket, not yet consumed
    std::size_t staged_begin_ = 0, staged_end_ = 0;
    bool filling_ = false;  // a read into the staging buffer is under way
    bool eof_ = false;      // the peer closed its side
    int last_errno_ = 0;    // of the last failed send in the BIO
    std::string gather_;    // small multi-buffer writes go out as one record
};

// The TLS alert the partner sent, when `ec` reports one (OpenSSL's "tlsv1 alert …"
// reasons): its AlertDescription (RFC 8446 §6), else -1.
int received_alert(const net::error_code& ec);
// The RFC 8446 name of an AlertDescription ("unknown_ca"), or "alert <n>".
std::string alert_name(int description);

}  // namespace mtls::proxy
