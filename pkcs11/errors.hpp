// Cryptoki return codes as names, and the exception every pkcs11/ function throws.
//
// Messages name what failed (module, token, key, the Cryptoki function) and the return code
// by name, e.g.
//   C_Login on token "mtls-agent" (serial 5e1f…, module /usr/lib/softhsm/libsofthsm2.so)
//   failed: CKR_PIN_INCORRECT (check the PIN in pin_file /etc/mtls-agent/pin)
// They never contain a PIN.
#pragma once

#include <stdexcept>
#include <string>

#include "pkcs11/cryptoki.hpp"

namespace mtls::pkcs11 {

// "CKR_PIN_INCORRECT"; unknown codes as "CKR_0x000001a3" (vendor codes: "CKR_VENDOR_DEFINED+0x…").
std::string rv_name(CK_RV rv);

class Error : public std::runtime_error {
  public:
    // rv is CKR_OK for errors that do not come from a Cryptoki call (bad URI, missing PIN file…).
    explicit Error(const std::string& message, CK_RV rv = CKR_OK)
        : std::runtime_error(message), rv_(rv) {}
    CK_RV rv() const noexcept { return rv_; }

  private:
    CK_RV rv_;
};

// A signature needed a private key the token does not have any more (destroyed out of band,
// or the token was replaced): its handle is invalid and looking it up again by CKA_ID finds
// nothing. rv() is CKR_KEY_HANDLE_INVALID.
class KeyGone : public Error {
  public:
    using Error::Error;
};

// True for return codes after which the session (or the login state, or the token) is gone
// and the operation may succeed on a fresh session after logging in again.
bool is_session_lost(CK_RV rv) noexcept;

}  // namespace mtls::pkcs11
