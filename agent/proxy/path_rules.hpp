// Request paths the proxy refuses because servers disagree on what they mean. A route's
// path prefix decides which callers may reach which partner API, so a path that one server
// reads as "/public/../admin" and another as "/admin" must not pass unchanged:
//  - dot segments ("." or "..", also %2e-encoded): always refused (RFC 3986 §5.2.4 removes
//    them, so they never name a resource of their own);
//  - ambiguous forms, refused unless the route sets allow_ambiguous_paths = true:
//    a dot segment with path parameters ("..;x", Tomcat and Spring strip the ";…"),
//    backslashes (raw or %5c: some servers treat them as "/"), encoded slashes (%2f),
//    double encoding of ".", "/" or "\" (%252e, %252f, %255c: decoded twice by some
//    stacks) and an encoded NUL (%00).
#pragma once

#include <string>
#include <string_view>

namespace mtls::proxy {

// Whether the path (no query) has a "." or ".." segment, also percent-encoded.
bool has_dot_segment(std::string_view path);

// What makes the path (no query) ambiguous, e.g. "an encoded \"/\" (%2f)"; empty if nothing.
std::string ambiguous_path_reason(std::string_view path);

}  // namespace mtls::proxy
