#include "agent/proxy/header_rules.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>

#include "agent/proxy/browser_guard.hpp"
#include "agent/proxy/http_feed.hpp"
#include "agent/proxy/path_rules.hpp"
#include "common/text.hpp"

namespace mtls::proxy {
namespace {
using net::http::field;
using net::http::verb;

using text::iequals;
using text::istarts_with;
using text::lower;
constexpr auto trim = text::trim_ows;

// The fields named by the Connection fields, lower-case. A walk of the field list, not a
// lookup by name: with the few fields of most messages that is cheaper.
std::vector<std::string> connection_tokens(const net::http::fields& f) {
    std::vector<std::string> out;
    for (const auto& field_ : f) {
        if (field_.name() != field::connection) continue;
        std::string_view v = field_.value();
        while (!v.empty()) {
            auto comma = v.find(',');
            std::string_view tok = trim(v.substr(0, comma));
            if (!tok.empty()) out.push_back(lower(tok));
            if (comma == std::string_view::npos) break;
            v.remove_prefix(comma + 1);
        }
    }
    return out;
}

// What prepare_request needs of the request's fields, from one walk of them (each lookup
// by name would search Beast's field set again). Values are the first field's of a name.
struct RequestFields {
    std::size_t count = 0, hosts = 0, content_lengths = 0, transfer_encodings = 0;
    std::string_view content_length, transfer_encoding;
    std::optional<std::string_view> expect;
    bool authorization = false, connection = false;
    BrowserFields browser;  // Host, Origin, Sec-Fetch-Site
};

RequestFields scan_fields(const net::http::fields& in) {
    RequestFields r;
    for (const auto& f : in) {
        ++r.count;
        switch (f.name()) {
            case field::host:
                if (r.hosts++ == 0) r.browser.host = f.value();
                break;
            case field::content_length:
                if (r.content_lengths++ == 0) r.content_length = f.value();
                break;
            case field::transfer_encoding:
                if (r.transfer_encodings++ == 0) r.transfer_encoding = f.value();
                break;
            case field::expect:
                if (!r.expect) r.expect = f.value();
                break;
            case field::authorization:
                r.authorization = true;
                break;
            case field::connection:
                r.connection = true;
                break;
            case field::origin:
                if (!r.browser.origin) r.browser.origin = f.value();
                break;
            default:  // by name: Beast 1.74 has no enumerator for it (a later one may)
                if (!r.browser.sec_fetch_site && iequals(f.name_string(), "Sec-Fetch-Site"))
                    r.browser.sec_fetch_site = f.value();
                break;
        }
    }
    return r;
}

bool is_idempotent(verb m) {
    switch (m) {
        case verb::get:
        case verb::head:
        case verb::options:
        case verb::trace:
        case verb::put:
        case verb::delete_:
            return true;
        default:
            return false;
    }
}

}  // namespace

bool is_hop_by_hop(field f, std::string_view name, const std::vector<std::string>& tokens) {
    switch (f) {  // Beast knows each of these names, so a field named so has its enumerator
        case field::connection:
        case field::keep_alive:
        case field::te:
        case field::trailer:
        case field::transfer_encoding:
        case field::upgrade:
            return true;
        default:
            break;
    }
    if (istarts_with(name, "proxy-")) return true;  // Proxy-Authorization, Proxy-Connection, …
    for (const auto& t : tokens)                    // lower-case already
        if (iequals(name, t)) return true;
    return false;
}

PrepareResult prepare_request(const net::http::request_header<>& in, const RouteTable& routes,
                              const Caller& caller, const config::Listener& listener) {
    const std::size_t max_header_count = listener.max_header_count;
    // Method and target form.
    if (in.method() == verb::connect)
        return method_not_allowed(
            "CONNECT is refused: this proxy only forwards to its "
            "configured routes");
    std::string_view target = in.target();
    if (target.empty() || target.front() != '/') {
        if (target == "*") return bad_request("asterisk-form request-target is not supported");
        return bad_request(
            "absolute-form request-target refused: this is not an open proxy; "
            "send origin-form (GET /route-prefix/path)");
    }
    if (in.method() == verb::unknown)
        return bad_request("unknown method \"" + std::string(in.method_string()) + "\"");
    if (in.version() != 11 && in.version() != 10)
        return bad_request("HTTP version " + std::to_string(in.version() / 10) + "." +
                           std::to_string(in.version() % 10) + " is not supported (1.0, 1.1)");
    std::string_view path = target.substr(0, target.find('?'));
    if (has_dot_segment(path)) return bad_request("\".\" or \"..\" path segments are refused");

    // Fields: count, framing, Host.
    const RequestFields fields = scan_fields(in);
    const std::size_t count = fields.count;
    if (count > max_header_count)
        return headers_too_large("the request has " + std::to_string(count) +
                                 " header fields; the limit is " +
                                 std::to_string(max_header_count) + " (listener.max_header_count)");
    if (fields.content_lengths > 1) return bad_request("more than one Content-Length field");
    if (fields.transfer_encodings > 1) return bad_request("more than one Transfer-Encoding field");
    if (fields.transfer_encodings == 1 && fields.content_lengths == 1)
        return bad_request("both Content-Length and Transfer-Encoding");
    PreparedRequest out;
    if (fields.transfer_encodings == 1) {
        if (!iequals(trim(fields.transfer_encoding), "chunked"))
            return bad_request("Transfer-Encoding other than \"chunked\" is refused");
        if (in.version() == 10) return bad_request("Transfer-Encoding in an HTTP/1.0 request");
        out.chunked = true;
    }
    if (fields.content_lengths == 1) {
        std::string_view v = trim(fields.content_length);
        std::uint64_t n = 0;
        auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
        if (v.empty() || ec != std::errc() || p != v.data() + v.size())
            return bad_request("bad Content-Length");
        out.content_length = n;
    }
    if (fields.hosts > 1) return bad_request("more than one Host field");
    if (fields.hosts == 0 && in.version() == 11)
        return bad_request("HTTP/1.1 request without Host");
    std::string_view host = fields.browser.host.value_or(std::string_view());

    // Expect.
    if (fields.expect) {
        if (!iequals(trim(*fields.expect), "100-continue"))
            return expectation_failed("only \"Expect: 100-continue\" is supported");
        out.expect_continue = in.version() == 11;
    }

    // A web page's request (DNS rebinding, cross-site): before anything is routed.
    if (auto refused = browser_request_refusal(fields.browser, caller, routes, listener))
        return *refused;

    // Route.
    auto m = routes.match(target, host);
    if (!m)
        return no_route("no route for " + std::string(path.substr(0, 200)) +
                        " (configured [[routes]] match by path_prefix or host)");
    const auto& entry = routes.routes()[m->index];
    const auto& route = entry.route;
    if (!routes.caller_allowed(m->index, caller))
        return forbidden("route " + route.name + " is restricted to listed uids/gids on the " +
                         "Unix socket; this caller is " + caller.address);
    if (!route.allow_ambiguous_paths)
        if (auto why = ambiguous_path_reason(path); !why.empty())
            return ambiguous_path("the path holds " + why +
                                  ", which servers decode differently; route " + route.name +
                                  " authorizes callers by path, so it is refused (set "
                                  "allow_ambiguous_paths = true on the route if the partner's "
                                  "API needs such paths)");
    if (fields.authorization &&
        route.client_authorization == config::Route::ClientAuthorization::reject)
        return authorization_not_allowed("route " + route.name +
                                         " refuses an Authorization header from the app "
                                         "(the proxy adds the credentials)");

    out.upstream_target = std::move(m->upstream_target);
    if (fields.connection) out.connection_tokens = connection_tokens(in);
    out.route_index = m->index;
    out.idempotent = is_idempotent(in.method());
    auto has_token = [&](const char* t) {
        return std::find(out.connection_tokens.begin(), out.connection_tokens.end(), t) !=
               out.connection_tokens.end();
    };
    out.client_keep_alive = in.version() == 11 ? !has_token("close") : has_token("keep-alive");
    return out;
}

void append_upstream_head(std::string& out, const net::http::request_header<>& in,
                          const PreparedRequest& prep, const RouteTable& routes,
                          const Caller& caller, const UpstreamExtras& extras) {
    const auto& entry = routes.routes()[prep.route_index];
    const auto& route = entry.route;
    auto forwarded = [&](std::string_view name) {
        return route.add_forwarded &&
               (iequals(name, "X-Forwarded-For") || iequals(name, "X-Forwarded-Host") ||
                iequals(name, "X-Forwarded-Proto"));
    };
    out += in.method_string();
    out += ' ';
    out += prep.upstream_target;
    out += " HTTP/1.1\r\n";
    for (const auto& f : in) {
        std::string_view name = f.name_string();
        if (is_hop_by_hop(f.name(), name, prep.connection_tokens)) continue;
        switch (f.name()) {
            case field::host:
            case field::content_length:
            case field::expect:
            case field::authorization:
                continue;
            default:
                break;
        }
        if (forwarded(name)) continue;  // replaced below
        bool overridden = false;
        for (const auto& [k, v] : route.set_headers)
            if (iequals(k, name)) overridden = true;
        if (overridden) continue;
        append_field(out, name, f.value());
    }
    append_field(out, "Host", entry.target.authority);
    for (const auto& [k, v] : route.set_headers)
        if (!forwarded(k)) append_field(out, k, v);
    if (route.add_forwarded) {
        std::string addr = caller.address;
        if (auto prior = in.find("X-Forwarded-For"); prior != in.end())
            addr = std::string(prior->value()) + ", " + addr;
        append_field(out, "X-Forwarded-For", addr);
        if (std::string_view host = in[field::host]; !host.empty())
            append_field(out, "X-Forwarded-Host", host);
        append_field(out, "X-Forwarded-Proto", "http");
    }
    if (!extras.content_length.empty()) append_field(out, "Content-Length", extras.content_length);
    if (extras.chunked) append_field(out, "Transfer-Encoding", "chunked");
    if (!extras.bearer_token.empty()) {
        out += "Authorization: Bearer ";
        out += extras.bearer_token;
        out += "\r\n";
    }
    end_head(out);
}

void append_downstream_head(std::string& out, const net::http::response_header<>& up,
                            const DownstreamFraming& f) {
    const auto start = out.size();
    append_start_line(out, up);
    out[start + 7] = f.version == 10 ? '0' : '1';  // the app's version, not the partner's
    auto tokens = connection_tokens(up);
    for (const auto& field_ : up) {
        if (is_hop_by_hop(field_.name(), field_.name_string(), tokens)) continue;
        if (field_.name() == field::content_length) continue;  // framing: below
        append_field(out, field_.name_string(), field_.value());
    }
    if (!f.content_length.empty()) append_field(out, "Content-Length", f.content_length);
    if (f.chunked) append_field(out, "Transfer-Encoding", "chunked");
    if (f.version == 10 && f.keep_alive) append_field(out, "Connection", "keep-alive");
    if (f.version != 10 && !f.keep_alive) append_field(out, "Connection", "close");
    end_head(out);
}

bool is_invalid_token_challenge(const net::http::response_header<>& res) {
    if (res.result() != net::http::status::unauthorized) return false;
    for (auto it = res.find(field::www_authenticate);
         it != res.end() && it->name() == field::www_authenticate; ++it) {
        std::string v = lower(it->value());
        if (istarts_with(trim(v), "bearer") && v.find("invalid_token") != std::string::npos)
            return true;
    }
    return false;
}

}  // namespace mtls::proxy
