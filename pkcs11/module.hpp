// A loaded PKCS#11 module: dlopen + C_GetFunctionList + C_Initialize, and C_Finalize + dlclose
// when the last user lets go.
//
// Cryptoki allows one C_Initialize per process and module, so modules are shared: open()
// returns the already loaded instance for the same path while someone holds it. The module is
// initialised with CKF_OS_LOCKING_OK so it may be called from several threads; a module that
// answers CKR_CANT_LOCK is initialised without it and serialized() tells callers to take
// call_lock() around every call.
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "pkcs11/cryptoki.hpp"

namespace mtls::pkcs11 {

// For an error of tpm2-pkcs11 that says no more than CKR_GENERAL_ERROR: which TPM it was
// told to use (TPM2_PKCS11_TCTI, or its default search), which store (TPM2_PKCS11_STORE) and
// what to check or start for that TCTI. "" for other modules (by path: the module is not
// initialised yet when C_Initialize fails).
std::string tpm2_pkcs11_hint(const std::string& module_path);

class Module {
  public:
    // Throws pkcs11::Error: "cannot load PKCS#11 module /x.so: <dlerror> (check pkcs11.module)".
    static std::shared_ptr<Module> open(const std::string& path);

    ~Module();
    Module(const Module&) = delete;
    Module& operator=(const Module&) = delete;

    CK_FUNCTION_LIST* fn() const noexcept { return fn_; }
    const std::string& path() const noexcept { return path_; }
    // "SoftHSM v2.6" (CK_INFO library description and version), for messages.
    const std::string& description() const noexcept { return description_; }
    // The module is tpm2-pkcs11 (CK_INFO manufacturer "tpm2-software.github.io"): a TPM 2.0
    // behind a TCTI (TPM2_PKCS11_TCTI), with its own rules for key templates (keys.cpp).
    bool is_tpm2_pkcs11() const noexcept { return tpm2_pkcs11_; }

    bool serialized() const noexcept { return serialized_; }
    std::mutex& call_lock() noexcept { return call_lock_; }

    // C_Initialize again after the module was finalized under us (another component of the
    // process called C_Finalize). CKR_CRYPTOKI_ALREADY_INITIALIZED counts as success.
    void reinitialize();

    // Throws pkcs11::Error "<call> (module <path>) failed: CKR_…" unless rv is CKR_OK.
    void check(CK_RV rv, const char* call) const;

  private:
    Module() = default;
    std::string path_;
    std::string description_;
    void* handle_ = nullptr;
    CK_FUNCTION_LIST* fn_ = nullptr;
    bool finalize_ = false;  // false when someone else in the process had initialised it
    bool serialized_ = false;
    bool tpm2_pkcs11_ = false;
    std::mutex call_lock_;
    std::mutex init_lock_;
};

// A space-padded Cryptoki text field as a string with trailing blanks removed.
std::string padded_field(const unsigned char* s, std::size_t n);

}  // namespace mtls::pkcs11
