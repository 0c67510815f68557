// asio::ssl + beast::ssl_stream. Only the few translation units that drive upstream TLS
// include this. Boost 1.74's header-only asio::ssl::context implementation names RSA/DH
// functions that OPENSSL_NO_DEPRECATED hides, so targets including it are built with
// mtls_asio_target() (cmake/MtlsWarnings.cmake): OPENSSL_NO_DEPRECATED is lifted for them while
// -Werror=deprecated-declarations still rejects any deprecated OpenSSL call in our code.
#pragma once

#include "agent/net/asio.hpp"

#include <boost/asio/ssl.hpp>
#include <boost/beast/ssl.hpp>

namespace mtls::net {
namespace ssl = boost::asio::ssl;
using tls_stream = boost::beast::ssl_stream<boost::beast::tcp_stream>;
}  // namespace mtls::net
