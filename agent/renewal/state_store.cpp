#include "agent/renewal/state_store.hpp"

#include "common/atomic_file.hpp"
#include "common/encoding.hpp"

#include <nlohmann/json.hpp>

#include <cerrno>
#include <system_error>

namespace mtls::renewal {
namespace {

constexpr int kVersion = 1;
constexpr std::size_t kMaxStateBytes = 4u << 20;

[[noreturn]] void bad(const std::string& origin, const std::string& what) {
    throw StateError(origin + ": " + what);
}

const nlohmann::json& member(const nlohmann::json& o, const char* key, const std::string& where,
                             const std::string& origin) {
    auto it = o.find(key);
    if (it == o.end()) bad(origin, where + "." + key + " is missing");
    return *it;
}

std::string string_member(const nlohmann::json& o, const char* key, const std::string& where,
                          const std::string& origin) {
    const auto& v = member(o, key, where, origin);
    if (!v.is_string()) bad(origin, where + "." + key + " must be a string");
    return v.get<std::string>();
}

KeyRef parse_key(const nlohmann::json& j, const std::string& where, const std::string& origin) {
    if (!j.is_object()) bad(origin, where + " must be an object");
    KeyRef k{string_member(j, "id", where, origin), string_member(j, "label", where, origin),
             string_member(j, "type", where, origin)};
    auto raw = encoding::hex_decode(k.id_hex);
    if (!raw || raw->empty() || raw->size() > 64 || k.id_hex.find(':') != std::string::npos)
        bad(origin, where + ".id must be 1-64 bytes of hex");
    return k;
}

nlohmann::json key_json(const KeyRef& k) {
    return {{"id", k.id_hex}, {"label", k.label}, {"type", k.type}};
}

}  // namespace

std::vector<std::string> State::referenced_ids() const {
    std::vector<std::string> ids;
    if (current_key) ids.push_back(current_key->id_hex);
    for (const auto& r : retiring) ids.push_back(r.key.id_hex);
    return ids;
}

State parse_state(std::string_view text, const std::string& origin) {
    auto j = nlohmann::json::parse(text, nullptr, false);
    if (j.is_discarded()) bad(origin, "not valid JSON");
    if (!j.is_object()) bad(origin, "top level must be an object");
    const auto& v = member(j, "version", "state", origin);
    if (!v.is_number_integer() || v.get<long long>() != kVersion)
        bad(origin, "unsupported state version " + v.dump() + " (expected 1)");
    State s;
    if (auto it = j.find("current_key"); it != j.end() && !it->is_null())
        s.current_key = parse_key(*it, "current_key", origin);
    if (auto it = j.find("chain_pem"); it != j.end()) {
        if (!it->is_string()) bad(origin, "state.chain_pem must be a string");
        s.chain_pem = it->get<std::string>();
    }
    if (auto it = j.find("est_ca_pem"); it != j.end()) {
        if (!it->is_string()) bad(origin, "state.est_ca_pem must be a string");
        s.est_ca_pem = it->get<std::string>();
    }
    if (auto it = j.find("retiring"); it != j.end()) {
        if (!it->is_array()) bad(origin, "state.retiring must be an array");
        for (std::size_t i = 0; i < it->size(); ++i) {
            const auto& r = (*it)[i];
            std::string where = "retiring[" + std::to_string(i) + "]";
            if (!r.is_object()) bad(origin, where + " must be an object");
            const auto& when = member(r, "destroy_after", where, origin);
            if (!when.is_number_integer()) bad(origin, where + ".destroy_after must be an integer");
            s.retiring.push_back(
                {parse_key(member(r, "key", where, origin), where + ".key", origin),
                 when.get<std::int64_t>()});
        }
    }
    if (auto it = j.find("instance"); it != j.end()) {
        if (!it->is_string()) bad(origin, "state.instance must be a string");
        s.instance = it->get<std::string>();
        auto raw = encoding::hex_decode(s.instance);
        if (!s.instance.empty() &&
            (!raw || raw->size() != 8 || s.instance.find(':') != std::string::npos))
            bad(origin, "state.instance must be 8 bytes of hex");
    }
    if (auto it = j.find("pending_key"); it != j.end() && !it->is_null()) {
        if (!it->is_string()) bad(origin, "state.pending_key must be a string");
        auto raw = encoding::hex_decode(it->get<std::string>());
        if (!raw || raw->empty() || raw->size() > 64 ||
            it->get<std::string>().find(':') != std::string::npos)
            bad(origin, "state.pending_key must be 1-64 bytes of hex");
        s.pending_key = it->get<std::string>();
    }
    if (auto it = j.find("last_renewal"); it != j.end() && !it->is_null()) {
        if (!it->is_object()) bad(origin, "state.last_renewal must be an object");
        LastRenewal lr;
        const auto& at = member(*it, "at", "last_renewal", origin);
        if (!at.is_number_integer() || at.get<std::int64_t>() < 0)
            bad(origin, "state.last_renewal.at must be a non-negative integer");
        lr.at = at.get<std::int64_t>();
        const auto& ok = member(*it, "ok", "last_renewal", origin);
        if (!ok.is_boolean()) bad(origin, "state.last_renewal.ok must be a boolean");
        lr.ok = ok.get<bool>();
        lr.message = string_member(*it, "message", "last_renewal", origin);
        if (lr.message.size() > 1000) lr.message.resize(1000);
        if (auto f = it->find("consecutive_failures"); f != it->end()) {
            if (!f->is_number_integer() || f->get<long long>() < 0 || f->get<long long>() > 1000000)
                bad(origin, "state.last_renewal.consecutive_failures must be 0-1000000");
            lr.consecutive_failures = f->get<int>();
        }
        s.last_renewal = std::move(lr);
    }
    if (auto it = j.find("last_compromise"); it != j.end() && !it->is_null()) {
        if (!it->is_object()) bad(origin, "state.last_compromise must be an object");
        Compromise c;
        const auto& at = member(*it, "at", "last_compromise", origin);
        if (!at.is_number_integer() || at.get<std::int64_t>() < 0)
            bad(origin, "state.last_compromise.at must be a non-negative integer");
        c.at = at.get<std::int64_t>();
        c.trigger = string_member(*it, "trigger", "last_compromise", origin);
        c.reason = string_member(*it, "reason", "last_compromise", origin);
        if (c.reason.size() > 1000) c.reason.resize(1000);
        if (auto d = it->find("destroy_key"); d != it->end() && !d->is_null()) {
            auto raw = d->is_string() ? encoding::hex_decode(d->get<std::string>()) : std::nullopt;
            if (!raw || raw->empty() || raw->size() > 64 ||
                d->get<std::string>().find(':') != std::string::npos)
                bad(origin, "state.last_compromise.destroy_key must be 1-64 bytes of hex");
            c.destroy_key = d->get<std::string>();
        }
        s.last_compromise = std::move(c);
    }
    if (s.current_key && s.chain_pem.empty()) bad(origin, "current_key without chain_pem");
    return s;
}

std::string serialize_state(const State& s) {
    nlohmann::json j;
    j["version"] = kVersion;
    j["current_key"] = s.current_key ? key_json(*s.current_key) : nlohmann::json(nullptr);
    j["chain_pem"] = s.chain_pem;
    j["est_ca_pem"] = s.est_ca_pem;
    if (!s.instance.empty()) j["instance"] = s.instance;
    j["pending_key"] = s.pending_key ? nlohmann::json(*s.pending_key) : nlohmann::json(nullptr);
    if (s.last_renewal)
        j["last_renewal"] = {{"at", s.last_renewal->at},
                             {"ok", s.last_renewal->ok},
                             {"message", s.last_renewal->message},
                             {"consecutive_failures", s.last_renewal->consecutive_failures}};
    if (s.last_compromise)
        j["last_compromise"] = {
            {"at", s.last_compromise->at},
            {"trigger", s.last_compromise->trigger},
            {"reason", s.last_compromise->reason},
            {"destroy_key", s.last_compromise->destroy_key
                                ? nlohmann::json(*s.last_compromise->destroy_key)
                                : nlohmann::json(nullptr)}};
    j["retiring"] = nlohmann::json::array();
    for (const auto& r : s.retiring)
        j["retiring"].push_back({{"key", key_json(r.key)}, {"destroy_after", r.destroy_after}});
    return j.dump(2) + "\n";
}

StateStore::StateStore(std::filesystem::path dir)
    : dir_(std::move(dir)), path_(dir_ / "identity.json") {}

std::optional<State> StateStore::load() const {
    std::string text;
    try {
        text = files::read_private(path_, kMaxStateBytes);
    } catch (const std::system_error& e) {
        if (e.code().value() == ENOENT) return std::nullopt;
        throw StateError(std::string(e.what()) + " (check the state directory's owner and mode)");
    } catch (const std::length_error& e) {
        throw StateError(e.what());
    }
    return parse_state(text, path_.string());
}

void StateStore::save(const State& s) const {
    files::ensure_dir(dir_, 0700);
    files::write_atomic(path_, serialize_state(s), 0600);
}

}  // namespace mtls::renewal
