#include "tests/support/agent_world.hpp"

#include "tests/support/poll.hpp"

#include "common/atomic_file.hpp"
#include "common/ossl.hpp"

#include <gtest/gtest.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include <algorithm>
#include <cctype>
#include <ctime>
#include <stdexcept>
#include <thread>

namespace mtls::test {

using nlohmann::json;

namespace {

std::vector<std::string> with_credentials(const std::filesystem::path& dir,
                                          std::vector<std::string> flags) {
    auto args = AgentProcess::sandbox_args(dir);
    args.insert(args.end(), flags.begin(), flags.end());
    return args;
}

std::vector<std::string> sorted(std::vector<std::string> v) {
    std::sort(v.begin(), v.end());
    return v;
}

}  // namespace

AgentWorld::AgentWorld(const std::string& name, std::vector<std::string> sandbox_flags,
                       AgentSetup setup)
    : dir(name), token(setup.tpm ? TempToken::create_tpm(name) : TempToken::create(name)) {
    std::filesystem::create_directories(dir.path() / "sbx");
    sandbox = std::make_unique<SandboxProcess>(
        dir.path() / "sbx", with_credentials(dir.path(), std::move(sandbox_flags)));
    agent = std::make_unique<AgentProcess>(dir.path(), token, *sandbox, std::move(setup));
}

renewal::State AgentWorld::state() const {
    const auto file = agent->state_file();
    if (!std::filesystem::exists(file)) throw std::runtime_error(file.string() + " does not exist");
    return renewal::parse_state(files::read_all(file, 1u << 20), file.string());
}

std::vector<std::string> AgentWorld::token_keys() const {
    return sorted(token_key_ids(token));
}

json AgentWorld::call(const std::string& path) const {
    auto r = run_command({"curl", "-sS", "--max-time", "30", agent->url(path)});
    auto j = json::parse(r.out, nullptr, false);
    return j.is_discarded() ? json() : j;
}

std::vector<std::string> referenced_keys(const renewal::State& s) {
    return sorted(s.referenced_ids());
}

std::vector<std::string> unreferenced_keys(const std::vector<std::string>& token_keys,
                                           const renewal::State& s) {
    auto refs = referenced_keys(s);
    std::vector<std::string> out;
    for (const auto& k : token_keys)
        if (std::find(refs.begin(), refs.end(), k) == refs.end()) out.push_back(k);
    return out;
}

StateSnapshot consistent_snapshot(const AgentWorld& w, std::chrono::milliseconds deadline) {
    // The agent destroys retired keys before it saves the state without them (a crash in
    // between is repaired at the next start), so for a moment the file may name a key the
    // token no longer has: wait until the state is the same before and after reading the
    // token and agrees with it, or the deadline passes (then the last reading is returned).
    StateSnapshot last;
    poll_until(
        [&] {
            auto before = renewal::serialize_state(w.state());
            auto keys = w.token_keys();
            auto after = w.state();
            const bool stable = renewal::serialize_state(after) == before;
            const bool agree = stable && keys == referenced_keys(after);
            last = {std::move(after), std::move(keys)};
            return agree;
        },
        deadline, std::chrono::milliseconds(20));  // each check opens the token
    return last;
}

std::string norm_serial(std::string s) {
    s.erase(std::remove(s.begin(), s.end(), ':'), s.end());
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
    s.erase(0, std::min(s.find_first_not_of('0'), s.size()));
    return s;
}

std::string leaf_serial(const std::string& chain_pem) {
    ossl::Bio bio(BIO_new_mem_buf(chain_pem.data(), static_cast<int>(chain_pem.size())));
    ossl::X509Ptr leaf(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (!leaf) {
        ERR_clear_error();
        return "";
    }
    ossl::BigNum bn(ASN1_INTEGER_to_BN(X509_get0_serialNumber(leaf.get()), nullptr));
    char* hex = bn ? BN_bn2hex(bn.get()) : nullptr;
    std::string out(hex ? hex : "");
    OPENSSL_free(hex);
    return norm_serial(out);
}

std::future<CommandResult> call_async(const AgentProcess& agent, const std::string& path) {
    const std::string url = agent.url(path);
    return std::async(std::launch::async, [url] {
        return run_command({"curl", "-sS", "--max-time", "30", "-w", "\n%{http_code}", url}, "",
                           std::chrono::seconds(40));
    });
}

std::string http_status(const CommandResult& r) {
    auto at = r.out.rfind('\n');
    return at == std::string::npos ? r.out : r.out.substr(at + 1);
}

std::string bound_answer(unsigned status, const std::string& body) {
    if (status != 200) return "status " + std::to_string(status);
    auto j = json::parse(body, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return "not JSON";
    const auto token = j.find("token");
    if (token == j.end() || !token->is_object()) return "no token in the answer";
    if (!token->value("valid", false)) return "token not valid";
    if (!token->value("bound_to_this_certificate", false)) return "token not bound";
    return "";
}

json expect_consistent(const AgentWorld& w, std::chrono::milliseconds deadline) {
    const auto log = w.agent->log();
    SCOPED_TRACE("agent log (end):\n" + log.substr(log.size() > 6000 ? log.size() - 6000 : 0));
    // Status, identity.json and the token are read one after the other while the agent may
    // be renewing: read until they agree (a real disagreement lasts past the deadline).
    const auto until = std::chrono::steady_clock::now() + deadline;
    json status;
    StateSnapshot snap;
    auto agree = [&] {
        return status.is_object() && status["identity"].is_object() && snap.state.current_key &&
               status["identity"]["key_id"] == snap.state.current_key->id_hex &&
               norm_serial(status["identity"]["serial"]) == leaf_serial(snap.state.chain_pem) &&
               snap.keys == referenced_keys(snap.state);
    };
    do {
        status = w.agent->status().value_or(json());
        snap = consistent_snapshot(w, deadline);
        if (!agree()) continue;
        auto again = w.agent->status().value_or(json());
        if (again.is_object() && again["identity"] == status["identity"]) break;
    } while (std::chrono::steady_clock::now() < until);
    if (!status.is_object() || !status["identity"].is_object()) {
        ADD_FAILURE() << "no identity in status: " << status;
        return status;
    }
    const auto& id = status["identity"];
    EXPECT_EQ(status["state"], "healthy") << status;
    EXPECT_GT(id["seconds_left"].get<long long>(), 0) << status;
    if (!snap.state.current_key) {
        ADD_FAILURE() << "identity.json has no current key";
        return status;
    }
    EXPECT_EQ(id["key_id"], snap.state.current_key->id_hex);
    EXPECT_EQ(norm_serial(id["serial"]), leaf_serial(snap.state.chain_pem));
    EXPECT_EQ(snap.keys, referenced_keys(snap.state)) << "the token's keys vs identity.json";
    // The partner sees that certificate (or the next one, if a renewal just happened) and a
    // token bound to it.
    auto answer = w.call();
    auto later = w.agent->status().value_or(json());
    EXPECT_EQ(bound_answer(answer.is_object() ? 200 : 0, answer.dump()), "") << answer;
    if (answer.is_object() && answer["client_certificate"].is_object()) {
        const auto seen = norm_serial(answer["client_certificate"].value("serial", ""));
        EXPECT_TRUE(
            seen == norm_serial(id["serial"]) ||
            (later["identity"].is_object() && seen == norm_serial(later["identity"]["serial"])))
            << "the partner saw serial " << seen << ", status says " << id["serial"];
    }
    return status;
}

std::chrono::system_clock::time_point parse_utc(const std::string& rfc3339) {
    std::tm tm{};
    const char* end = strptime(rfc3339.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
    if (!end) throw std::invalid_argument("not a UTC time: " + rfc3339);
    std::chrono::milliseconds fraction{0};
    if (*end == '.') {  // fractional seconds (the agent's log: milliseconds)
        long long scale = 100;
        for (++end; *end >= '0' && *end <= '9'; ++end, scale /= 10)
            if (scale > 0) fraction += std::chrono::milliseconds((*end - '0') * scale);
    }
    if (end[0] != 'Z' || end[1] != '\0') throw std::invalid_argument("not a UTC time: " + rfc3339);
    return std::chrono::system_clock::from_time_t(timegm(&tm)) + fraction;
}

}  // namespace mtls::test
