#include "agent/token/json_strict.hpp"

#include "agent/token/remote_text.hpp"

#include <set>
#include <stdexcept>

namespace mtls::token::detail {
namespace {

struct TooDeep : std::runtime_error {
    TooDeep() : std::runtime_error("too deep") {}
};
struct Duplicate : std::runtime_error {
    explicit Duplicate(const std::string& k) : std::runtime_error(k) {}
};

}  // namespace

std::optional<nlohmann::json> parse_object(std::string_view text, std::string& why, int max_depth) {
    std::set<std::string> top_keys;
    auto cb = [&](int depth, nlohmann::json::parse_event_t ev, nlohmann::json& parsed) {
        if (depth > max_depth) throw TooDeep();
        if (ev == nlohmann::json::parse_event_t::key && depth == 1) {
            const auto& k = parsed.get_ref<const std::string&>();
            if (!top_keys.insert(k).second) throw Duplicate(k);
        }
        return true;
    };
    try {
        auto j = nlohmann::json::parse(text.begin(), text.end(), cb, /*allow_exceptions=*/true,
                                       /*ignore_comments=*/false);
        if (!j.is_object()) {
            why = "not a JSON object";
            return std::nullopt;
        }
        return j;
    } catch (const TooDeep&) {
        why = "JSON nested deeper than " + std::to_string(max_depth) + " levels";
    } catch (const Duplicate& d) {
        why = "member \"" + sanitize_remote_text(d.what(), 64) + "\" appears twice";
    } catch (const nlohmann::json::exception&) {
        why = "not valid JSON";
    }
    return std::nullopt;
}

}  // namespace mtls::token::detail
