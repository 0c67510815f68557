#include "tests/support/agent_world.hpp"

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
    : dir(name), token(TempToken::create(name)) {
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
    const auto until = std::chrono::steady_clock::now() + deadline;
    for (;;) {
        auto before = renewal::serialize_state(w.state());
        auto keys = w.token_keys();
        auto after = w.state();
        if (renewal::serialize_state(after) == before || std::chrono::steady_clock::now() > until)
            return {std::move(after), std::move(keys)};
    }
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

std::string bound_answer(unsigned status, const std::string& body) {
    if (status != 200) return "status " + std::to_string(status);
    auto j = json::parse(body, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return "not JSON";
    if (!j["token"].value("valid", false)) return "token not valid";
    if (!j["token"].value("bound_to_this_certificate", false)) return "token not bound";
    return "";
}

void expect_consistent(const AgentWorld& w, const json& status) {
    SCOPED_TRACE("agent log:\n" + w.agent->log());
    ASSERT_TRUE(status["identity"].is_object()) << status;
    const auto& id = status["identity"];
    EXPECT_GT(id["seconds_left"].get<long long>(), 0) << status;
    auto snap = consistent_snapshot(w);
    ASSERT_TRUE(snap.state.current_key.has_value()) << "identity.json has no current key";
    EXPECT_EQ(id["key_id"], snap.state.current_key->id_hex);
    EXPECT_EQ(norm_serial(id["serial"]), leaf_serial(snap.state.chain_pem));
    EXPECT_EQ(snap.keys, referenced_keys(snap.state)) << "the token's keys vs identity.json";
    auto answer = w.call();
    ASSERT_TRUE(answer.is_object()) << "no answer through the proxy";
    EXPECT_EQ(norm_serial(answer["client_certificate"]["serial"]), norm_serial(id["serial"]));
    EXPECT_TRUE(answer["token"].value("bound_to_this_certificate", false)) << answer;
}

bool poll_until(const std::function<bool()>& pred, std::chrono::milliseconds deadline) {
    const auto until = std::chrono::steady_clock::now() + deadline;
    while (!pred()) {
        if (std::chrono::steady_clock::now() >= until) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));  // poll interval
    }
    return true;
}

std::chrono::system_clock::time_point parse_utc(const std::string& rfc3339) {
    std::tm tm{};
    const char* end = strptime(rfc3339.c_str(), "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (!end || *end != '\0') throw std::invalid_argument("not a UTC time: " + rfc3339);
    return std::chrono::system_clock::from_time_t(timegm(&tm));
}

}  // namespace mtls::test
