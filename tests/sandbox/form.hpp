// application/x-www-form-urlencoded bodies and URL query strings (WHATWG URL "urlencoded"
// parsing: '&'-separated name=value pairs, '+' is a space, %XX escapes).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mtls::sandbox {

class Form {
  public:
    // nullopt when a %-escape is malformed.
    static std::optional<Form> parse(std::string_view text);

    // The first value of `name`, or nullopt.
    std::optional<std::string> get(std::string_view name) const;
    std::vector<std::string> all(std::string_view name) const;
    std::size_t count(std::string_view name) const;
    const std::vector<std::pair<std::string, std::string>>& pairs() const { return pairs_; }

  private:
    std::vector<std::pair<std::string, std::string>> pairs_;
};

// Percent-decoding with '+' as space; nullopt on a malformed escape.
std::optional<std::string> url_decode(std::string_view in);

// Splits a request target into path and query ("/a?b=c" -> "/a", "b=c").
std::pair<std::string_view, std::string_view> split_target(std::string_view target);

}  // namespace mtls::sandbox
