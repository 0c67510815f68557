// softhsm-token-init: initialises a PKCS#11 token (C_InitToken + C_InitPIN) with PINs read
// from files, so that no PIN ever appears on a command line (softhsm2-util and pkcs11-tool
// take them as arguments or need a terminal). Used by softhsm-setup.sh.
//
//   softhsm-token-init MODULE LABEL SO_PIN_FILE USER_PIN_FILE
//
// Prints the token's serial number on success. If a token with LABEL already exists it is
// left alone and its serial is printed. Exit codes: 0 ok, 1 error (message on stderr).
#include <dlfcn.h>
#include <p11-kit/pkcs11.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

namespace {

std::string read_pin(const char* path) {
    std::ifstream in(path);
    if (!in) throw std::runtime_error(std::string("cannot read PIN file ") + path);
    std::string pin;
    std::getline(in, pin);
    if (pin.empty()) throw std::runtime_error(std::string("PIN file is empty: ") + path);
    return pin;
}

std::string padded(const CK_UTF8CHAR* s, size_t n) {
    std::string out(reinterpret_cast<const char*>(s), n);
    while (!out.empty() && out.back() == ' ') out.pop_back();
    return out;
}

void check(CK_RV rv, const char* what) {
    if (rv != CKR_OK) {
        char buf[128];
        std::snprintf(buf, sizeof buf, "%s failed: CK_RV 0x%08lx", what, static_cast<unsigned long>(rv));
        throw std::runtime_error(buf);
    }
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 5) {
        std::cerr << "usage: softhsm-token-init MODULE LABEL SO_PIN_FILE USER_PIN_FILE\n";
        return 1;
    }
    try {
        const std::string label = argv[2];
        if (label.empty() || label.size() > 32) throw std::runtime_error("label must be 1-32 characters");
        void* lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
        if (!lib) throw std::runtime_error(std::string("cannot load module: ") + dlerror());
        auto get = reinterpret_cast<CK_C_GetFunctionList>(dlsym(lib, "C_GetFunctionList"));
        if (!get) throw std::runtime_error("module has no C_GetFunctionList");
        CK_FUNCTION_LIST_PTR f = nullptr;
        check(get(&f), "C_GetFunctionList");
        check(f->C_Initialize(nullptr), "C_Initialize");

        CK_ULONG n = 0;
        check(f->C_GetSlotList(CK_TRUE, nullptr, &n), "C_GetSlotList");
        std::vector<CK_SLOT_ID> slots(n);
        check(f->C_GetSlotList(CK_TRUE, slots.data(), &n), "C_GetSlotList");
        slots.resize(n);
        CK_SLOT_ID free_slot = 0;
        bool have_free = false;
        for (auto s : slots) {
            CK_TOKEN_INFO ti{};
            if (f->C_GetTokenInfo(s, &ti) != CKR_OK) continue;
            if (ti.flags & CKF_TOKEN_INITIALIZED) {
                if (padded(ti.label, sizeof ti.label) == label) {
                    std::cout << padded(ti.serialNumber, sizeof ti.serialNumber) << "\n";
                    f->C_Finalize(nullptr);
                    return 0;
                }
            } else if (!have_free) {
                free_slot = s;
                have_free = true;
            }
        }
        if (!have_free) throw std::runtime_error("no free slot to initialise a token in");

        std::string so = read_pin(argv[3]);
        std::string user = read_pin(argv[4]);
        CK_UTF8CHAR lab[32];
        std::memset(lab, ' ', sizeof lab);
        std::memcpy(lab, label.data(), label.size());
        check(f->C_InitToken(free_slot, reinterpret_cast<CK_UTF8CHAR_PTR>(so.data()), so.size(), lab),
              "C_InitToken");
        // SoftHSM moves the new token to a new slot id: find it again by label.
        n = 0;
        check(f->C_GetSlotList(CK_TRUE, nullptr, &n), "C_GetSlotList");
        slots.assign(n, 0);
        check(f->C_GetSlotList(CK_TRUE, slots.data(), &n), "C_GetSlotList");
        for (CK_ULONG i = 0; i < n; ++i) {
            CK_TOKEN_INFO ti{};
            if (f->C_GetTokenInfo(slots[i], &ti) != CKR_OK) continue;
            if (!(ti.flags & CKF_TOKEN_INITIALIZED) || padded(ti.label, sizeof ti.label) != label) continue;
            CK_SESSION_HANDLE h;
            check(f->C_OpenSession(slots[i], CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr, &h),
                  "C_OpenSession");
            check(f->C_Login(h, CKU_SO, reinterpret_cast<CK_UTF8CHAR_PTR>(so.data()), so.size()),
                  "C_Login(SO)");
            check(f->C_InitPIN(h, reinterpret_cast<CK_UTF8CHAR_PTR>(user.data()), user.size()),
                  "C_InitPIN");
            f->C_Logout(h);
            f->C_CloseSession(h);
            std::cout << padded(ti.serialNumber, sizeof ti.serialNumber) << "\n";
            f->C_Finalize(nullptr);
            return 0;
        }
        throw std::runtime_error("token initialised but not found again by label");
    } catch (const std::exception& e) {
        std::cerr << "softhsm-token-init: " << e.what() << "\n";
        return 1;
    }
}
