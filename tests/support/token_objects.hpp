// Test helper: every object on a throwaway SoftHSM2 token as the test process sees it
// (logged in with the token's PIN file), and out-of-band changes to it — what an operator
// with pkcs11-tool, another program on a shared token, or a crash inside C_GenerateKeyPair
// does to the agent's keys.
#pragma once

#include "tests/support/softhsm_token.hpp"

#include <p11-kit/pkcs11.h>

#include <string>
#include <vector>

namespace mtls::test {

struct TokenObject {
    std::string id_hex;  // CKA_ID, lower-case hex ("" when it has none)
    std::string label;   // CKA_LABEL ("" when it has none)
    CK_OBJECT_CLASS cls = CKO_DATA;
};

// Every object on the token (private ones included), in no particular order.
std::vector<TokenObject> token_objects(const TempToken& token);
// The objects whose CKA_ID starts with the bytes `id_hex_prefix` (hex).
std::vector<TokenObject> token_objects_with_id(const TempToken& token,
                                               const std::string& id_hex_prefix);
// Destroys every object with this CKA_ID (as `pkcs11-tool --delete-object --id` would do for
// each class); returns how many.
std::size_t destroy_token_objects(const TempToken& token, const std::string& id_hex);
// Makes an EC P-256 key pair with this CKA_ID; the public key gets `public_label`, the
// private key `private_label` — or no CKA_LABEL at all when that is empty. With
// keep_private false the private key is destroyed again, leaving a lone public key. The
// leftovers of a generation killed half-way, in a deterministic form.
void make_key_objects(const TempToken& token, const std::string& id_hex,
                      const std::string& public_label, const std::string& private_label,
                      bool keep_private);

}  // namespace mtls::test
