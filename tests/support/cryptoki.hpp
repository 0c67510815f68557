// Test helper: load a PKCS#11 module directly (dlopen + C_GetFunctionList + C_Initialize),
// to cross-check what the code under test did on the token. C_Finalize and dlclose happen
// when the object goes away. Test-only: the agent's own module handling is in pkcs11/.
#pragma once

#include <p11-kit/pkcs11.h>

#include <optional>
#include <string>
#include <string_view>

namespace mtls::test {

class CryptokiModule {
  public:
    explicit CryptokiModule(const std::string& path);  // throws std::runtime_error
    ~CryptokiModule();
    CryptokiModule(const CryptokiModule&) = delete;
    CryptokiModule& operator=(const CryptokiModule&) = delete;

    CK_FUNCTION_LIST* operator->() const { return fns_; }
    CK_FUNCTION_LIST* functions() const { return fns_; }

    // The slot holding the token with this label and serial (blank padding ignored).
    std::optional<CK_SLOT_ID> find_token(std::string_view label, std::string_view serial) const;

  private:
    void* lib_ = nullptr;
    CK_FUNCTION_LIST* fns_ = nullptr;
};

// A blank-padded fixed-size Cryptoki text field, without the padding.
std::string cryptoki_text(const unsigned char* field, std::size_t size);

}  // namespace mtls::test
