// Test helper for the lifecycle and end-to-end suites: one partner sandbox, one throwaway
// SoftHSM2 token and one real mtls-agent wired to them (tests/support/agent_process.hpp),
// plus the checks those suites share — what identity.json says (read with the agent's own
// parser), which keys the token holds, and whether a call through the proxy is made with
// the agent's certificate and a token bound to it.
//
//   AgentWorld w("crash", {"--cert-validity", "60"}, setup);
//   w.agent->start();
//   auto st = w.agent->wait_healthy();
//   expect_consistent(w);       // state == token == status == what the partner saw
#pragma once

#include "agent/renewal/state_store.hpp"
#include "tests/support/agent_process.hpp"
#include "tests/support/poll.hpp"
#include "tests/support/temp_dir.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <future>
#include <memory>
#include <string>
#include <vector>

namespace mtls::test {

struct AgentWorld {
    // `sandbox_flags` are added to the EST credentials flags the agent needs.
    explicit AgentWorld(const std::string& name, std::vector<std::string> sandbox_flags = {},
                        AgentSetup setup = {});

    TempDir dir;
    TempToken token;
    std::unique_ptr<SandboxProcess> sandbox;
    std::unique_ptr<AgentProcess> agent;

    // identity.json through renewal::parse_state; throws renewal::StateError when it does not
    // parse (and std::runtime_error when it is missing).
    renewal::State state() const;
    // The agent's keys on the token (CKA_ID hex), sorted.
    std::vector<std::string> token_keys() const;
    // GET /partner/<path> through the proxy with curl: the partner's JSON answer (null if the
    // call failed or the answer is no JSON).
    nlohmann::json call(const std::string& path = "api/secure/data") const;
};

// The key ids a state references (current + retiring), sorted.
std::vector<std::string> referenced_keys(const renewal::State& s);
// Keys on the token the state does not reference.
std::vector<std::string> unreferenced_keys(const std::vector<std::string>& token_keys,
                                           const renewal::State& s);

// Reads the state and the token's keys as one settled snapshot: the state did not change
// while the token was read, and the two agree — polled until `deadline`, after which the
// last reading is returned as it is (for the caller's assertions to show).
struct StateSnapshot {
    renewal::State state;
    std::vector<std::string> keys;
};
StateSnapshot consistent_snapshot(const AgentWorld& w,
                                  std::chrono::milliseconds deadline = std::chrono::seconds(20));

// Serial numbers compared as the partner, OpenSSL and the agent print them (hex, colons,
// leading zeros, case).
std::string norm_serial(std::string s);
// The serial of the first certificate of a PEM chain (normalised), or "".
std::string leaf_serial(const std::string& chain_pem);

// An HttpLoad check: 200 with a valid token bound to the connection's certificate.
std::string bound_answer(unsigned status, const std::string& body);

// The agent is healthy with a valid identity whose key and certificate are identity.json's
// current ones; the token holds exactly the keys the state references; a call through the
// proxy is made with that certificate and a token bound to it. Status, state and token are
// re-read until they agree (they may not for a moment while the agent renews), at most for
// `deadline`. Returns the status it checked.
nlohmann::json expect_consistent(const AgentWorld& w,
                                 std::chrono::milliseconds deadline = std::chrono::seconds(20));

// A GET of /partner/<path> through the proxy in the background, on a connection of its own
// (curl): "<body>\n<status>" in out.
std::future<CommandResult> call_async(const AgentProcess& agent, const std::string& path);
// The status of a call_async() answer ("200"; "000" when there was none).
std::string http_status(const CommandResult& r);

// "2024-05-01T12:00:00Z" (as status prints times) or with fractional seconds
// ("…:00.123Z", the log's ts=) as a system_clock time point (to the millisecond).
std::chrono::system_clock::time_point parse_utc(const std::string& rfc3339);

}  // namespace mtls::test
