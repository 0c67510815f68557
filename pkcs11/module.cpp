#include "pkcs11/module.hpp"

#include <cstdlib>

#include <dlfcn.h>

#include <map>

#include "common/log.hpp"
#include "pkcs11/errors.hpp"

namespace mtls::pkcs11 {

// Under AddressSanitizer the module stays mapped after dlclose (RTLD_NODELETE): LeakSanitizer
// checks at exit, after the module was closed, and can only name (and a suppressions file
// only match) a leak inside a module that is still mapped — tpm2-pkcs11 1.9 leaks per ECDSA
// signature (docs/tpm.md; tests/tpm/lsan.supp). Production builds unload modules as before.
#if defined(__SANITIZE_ADDRESS__)
constexpr int kDlopenExtra = RTLD_NODELETE;
#else
constexpr int kDlopenExtra = 0;
#endif

std::string padded_field(const unsigned char* s, std::size_t n) {
    std::string out(reinterpret_cast<const char*>(s), n);
    while (!out.empty() && (out.back() == ' ' || out.back() == '\0')) out.pop_back();
    return out;
}

namespace {
std::mutex g_modules_mutex;
std::map<std::string, std::weak_ptr<Module>>& modules() {
    static std::map<std::string, std::weak_ptr<Module>> m;
    return m;
}
}  // namespace

std::shared_ptr<Module> Module::open(const std::string& path) {
    if (path.empty()) throw Error("no PKCS#11 module configured (set pkcs11.module)");
    std::lock_guard lk(g_modules_mutex);
    if (auto existing = modules()[path].lock()) return existing;

    std::shared_ptr<Module> m(new Module());
    m->path_ = path;
    m->handle_ = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | kDlopenExtra);
    if (!m->handle_) {
        const char* why = ::dlerror();
        throw Error("cannot load PKCS#11 module " + path + ": " + (why ? why : "dlopen failed") +
                    " (check pkcs11.module)");
    }
    auto get = reinterpret_cast<CK_C_GetFunctionList>(::dlsym(m->handle_, "C_GetFunctionList"));
    if (!get)
        throw Error("PKCS#11 module " + path +
                    " has no C_GetFunctionList (is it a PKCS#11 module?)");
    CK_RV rv = get(&m->fn_);
    if (rv != CKR_OK || !m->fn_)
        throw Error("C_GetFunctionList (module " + path + ") failed: " + rv_name(rv), rv);

    CK_C_INITIALIZE_ARGS args{};
    args.flags = CKF_OS_LOCKING_OK;
    rv = m->fn_->C_Initialize(&args);
    if (rv == CKR_CANT_LOCK) {
        // The module cannot use OS locking: initialise it single-threaded, serialize calls.
        rv = m->fn_->C_Initialize(nullptr);
        m->serialized_ = true;
    }
    if (rv == CKR_CRYPTOKI_ALREADY_INITIALIZED) {
        // Someone else in this process (another library) initialised it: share, don't finalize.
        log::warn("pkcs11.module_shared", {{"module", path}});
    } else if (rv != CKR_OK) {
        throw Error(
            "C_Initialize (module " + path + ") failed: " + rv_name(rv) + tpm2_pkcs11_hint(path),
            rv);
    } else {
        m->finalize_ = true;
    }
    CK_INFO info{};
    if (m->fn_->C_GetInfo(&info) == CKR_OK) {
        m->description_ = padded_field(info.libraryDescription, sizeof info.libraryDescription) +
                          " " + std::to_string(info.libraryVersion.major) + "." +
                          std::to_string(info.libraryVersion.minor);
        m->tpm2_pkcs11_ = padded_field(info.manufacturerID, sizeof info.manufacturerID)
                              .starts_with("tpm2-software");
    }
    modules()[path] = m;
    return m;
}

Module::~Module() {
    if (fn_ && finalize_) fn_->C_Finalize(nullptr);
    if (handle_) ::dlclose(handle_);
}

void Module::reinitialize() {
    std::lock_guard lk(init_lock_);
    CK_C_INITIALIZE_ARGS args{};
    args.flags = serialized_ ? 0 : CKF_OS_LOCKING_OK;
    const CK_RV rv = fn_->C_Initialize(serialized_ ? nullptr : &args);
    if (rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED)
        throw Error("C_Initialize (module " + path_ + ", after a reset) failed: " + rv_name(rv) +
                        tpm2_pkcs11_hint(path_),
                    rv);
    log::warn("pkcs11.module_reinitialized", {{"module", path_}});
}

void Module::check(CK_RV rv, const char* call) const {
    if (rv != CKR_OK)
        throw Error(std::string(call) + " (module " + path_ + ") failed: " + rv_name(rv) +
                        (rv == CKR_GENERAL_ERROR || rv == CKR_DEVICE_ERROR ? tpm2_pkcs11_hint(path_)
                                                                           : std::string()),
                    rv);
}

std::string tpm2_pkcs11_hint(const std::string& module_path) {
    if (module_path.find("tpm2_pkcs11") == std::string::npos) return {};
    const char* tcti_env = std::getenv("TPM2_PKCS11_TCTI");
    const char* store_env = std::getenv("TPM2_PKCS11_STORE");
    const std::string tcti = tcti_env && *tcti_env ? tcti_env : "";
    std::string h = "; the TPM (tpm2-pkcs11) could not be used: TCTI ";
    h += tcti.empty() ? "default (TPM2_PKCS11_TCTI unset: tpm2-abrmd on the system bus, then "
                        "/dev/tpmrm0, /dev/tpm0)"
                      : "TPM2_PKCS11_TCTI=" + tcti;
    h += ", store ";
    h += store_env && *store_env ? std::string("TPM2_PKCS11_STORE=") + store_env
                                 : std::string(
                                       "default (TPM2_PKCS11_STORE unset: /etc/tpm2_pkcs11, "
                                       "then $HOME/.tpm2_pkcs11)");
    h += ". Check: ";
    const std::string kind = tcti.substr(0, tcti.find(':'));
    if (kind == "device") {
        h += "the device exists (ls -l " + (tcti.size() > 7 ? tcti.substr(7) : "/dev/tpmrm0") +
             ") and this user may open it (group tss; under systemd the TPM drop-in: "
             "DeviceAllow=/dev/tpmrm0 rw, SupplementaryGroups=tss)";
    } else if (kind == "tabrmd") {
        h += "tpm2-abrmd runs (systemctl status tpm2-abrmd) on the D-Bus the TCTI names "
             "(bus_type=system unless it says session; DBUS_SESSION_BUS_ADDRESS for a session "
             "bus)";
    } else if (kind == "swtpm" || kind == "mssim") {
        h += "the TPM simulator listens at the TCTI's host and port (and port+1); tpm2-pkcs11 "
             "needs tpm2-abrmd in front of swtpm (TCTI tabrmd)";
    } else {
        h += "a TPM is present (/dev/tpmrm0) or tpm2-abrmd runs";
    }
    h += "; the store exists, holds a token (tpm2_ptool listtokens --pid 1 --path <store>) and "
         "is writable; and no other process is writing to it at this moment (\"database is "
         "locked\")";
    return h;
}

}  // namespace mtls::pkcs11
