// Crash points for the crash-safety tests: when the environment variable
// MTLS_AGENT_TEST_CRASH_AT is "<phase>:<step>" (e.g. "renew:persist"), the agent kills itself
// with SIGKILL right after that step of a renewal has completed, so the tests can check that a
// restart finds a valid identity and no orphan key. Unset (always, in production): no effect.
//   phases: "startup" (load_state, save_reconciled_state, destroy_orphan, publish), "enroll"
//   (first enrollment), "renew" (renew or rotate), "retire" (old key destroyed, state not
//   yet saved), "compromised" (rotate --compromised / our certificate revoked:
//   persist_intent, destroy_key, persist — then the "enroll" steps; tests/revocation/
//   compromised_test.cpp). tests/lifecycle/crash_test.cpp goes through the others. In "enroll"
//   and "renew", "key_intent" is right after the new key's CKA_ID was saved as
//   state.pending_key and before C_GenerateKeyPair (tests/interop/token_owner_test.cpp puts
//   the leftovers of a generation killed half-way on the token there).
#pragma once

#include <string_view>

namespace mtls::renewal {

void crash_point(std::string_view phase, std::string_view step);

}  // namespace mtls::renewal
