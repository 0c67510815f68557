#include "tests/support/cryptoki.hpp"

#include <dlfcn.h>

#include <cstdio>
#include <stdexcept>
#include <vector>

namespace mtls::test {

namespace {
// As in pkcs11/module.cpp: under AddressSanitizer the module (and the libraries it pulled
// in) stays mapped after dlclose, so LeakSanitizer, which checks at exit, can name the
// module a leak comes from and tests/tpm/lsan.supp can match it. tpm2-pkcs11 1.9 leaks its
// SQLite connection when C_Initialize fails with "database is locked" (an agent writing to
// the store; token_key_ids retries); unmapped, that was "<unknown module>", unmatchable.
#if defined(MTLS_ASAN_RUNTIME)
constexpr int kCryptokiDlopenExtra = RTLD_NODELETE;
#else
constexpr int kCryptokiDlopenExtra = 0;
#endif

std::string rv_text(const char* what, CK_RV rv) {
    char buf[96];
    std::snprintf(buf, sizeof buf, "%s failed: CK_RV 0x%08lx", what,
                  static_cast<unsigned long>(rv));
    return buf;
}
}  // namespace

std::string cryptoki_text(const unsigned char* field, std::size_t size) {
    std::string s(reinterpret_cast<const char*>(field), size);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\0')) s.pop_back();
    return s;
}

CryptokiModule::CryptokiModule(const std::string& path) {
    lib_ = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | kCryptokiDlopenExtra);
    if (!lib_) throw std::runtime_error("cannot load " + path + ": " + ::dlerror());
    auto get = reinterpret_cast<CK_C_GetFunctionList>(::dlsym(lib_, "C_GetFunctionList"));
    CK_RV rv = get ? get(&fns_) : CKR_FUNCTION_NOT_SUPPORTED;
    if (rv == CKR_OK) rv = fns_->C_Initialize(nullptr);
    if (rv != CKR_OK) {
        ::dlclose(lib_);
        throw std::runtime_error(rv_text(("initialising " + path).c_str(), rv));
    }
}

CryptokiModule::~CryptokiModule() {
    fns_->C_Finalize(nullptr);
    ::dlclose(lib_);
}

std::optional<CK_SLOT_ID> CryptokiModule::find_token(std::string_view label,
                                                     std::string_view serial) const {
    CK_ULONG n = 0;
    if (fns_->C_GetSlotList(CK_TRUE, nullptr, &n) != CKR_OK) return std::nullopt;
    std::vector<CK_SLOT_ID> slots(n);
    if (fns_->C_GetSlotList(CK_TRUE, slots.data(), &n) != CKR_OK) return std::nullopt;
    slots.resize(n);
    for (CK_SLOT_ID s : slots) {
        CK_TOKEN_INFO info{};
        if (fns_->C_GetTokenInfo(s, &info) != CKR_OK) continue;
        if (cryptoki_text(info.label, sizeof info.label) == label &&
            cryptoki_text(info.serialNumber, sizeof info.serialNumber) == serial)
            return s;
    }
    return std::nullopt;
}

}  // namespace mtls::test
