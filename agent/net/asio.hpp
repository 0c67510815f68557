// The Boost.Asio / Beast includes and short names used across agent/.
// <utility> first: Boost 1.74's asio/awaitable.hpp uses std::exchange without including it.
// TLS (asio::ssl) is NOT included here: see agent/net/asio_ssl.hpp.
#pragma once

#include <utility>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace mtls::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using boost::system::error_code;
using tcp = boost::asio::ip::tcp;
using unix_socket = boost::asio::local::stream_protocol;

#if defined(BOOST_ASIO_HAS_CO_AWAIT)  // not with clang 14 + Boost 1.74 (the fuzz preset)
using boost::asio::awaitable;
// co_await op(..., net::use_ec(ec)) style: errors as error_code, no exceptions.
inline auto use_ec(error_code& ec) {
    return asio::redirect_error(asio::use_awaitable, ec);
}
#endif

}  // namespace mtls::net
