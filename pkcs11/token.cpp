#include "pkcs11/token.hpp"

#include "common/encoding.hpp"
#include "common/log.hpp"

namespace mtls::pkcs11 {

TokenOptions TokenOptions::from_config(const config::Pkcs11& c) {
    TokenOptions o;
    o.module_path = c.module;
    o.token_uri = c.token_uri;
    o.pin = PinSource::from_config(c);
    return o;
}

std::string KeyInfo::id_hex() const {
    return encoding::hex(id);
}

namespace {

bool matches(const std::optional<std::string>& want, const std::string& have) {
    return !want || *want == have;
}

std::string token_summary(const CK_TOKEN_INFO& ti) {
    return "\"" + padded_field(ti.label, sizeof ti.label) + "\" (serial " +
           padded_field(ti.serialNumber, sizeof ti.serialNumber) + ")";
}

}  // namespace

CK_SLOT_ID Token::find_slot() const {
    CK_FUNCTION_LIST* f = module_->fn();
    CK_INFO info{};
    if (uri_.library_manufacturer || uri_.library_description) {
        module_->check(f->C_GetInfo(&info), "C_GetInfo");
        if (!matches(uri_.library_manufacturer,
                     padded_field(info.manufacturerID, sizeof info.manufacturerID)) ||
            !matches(uri_.library_description,
                     padded_field(info.libraryDescription, sizeof info.libraryDescription)))
            throw Error("token not found: module " + module_->path() +
                        " does not match the library attributes of " + uri_.token_part() +
                        " (check pkcs11.token)");
    }
    CK_ULONG n = 0;
    module_->check(f->C_GetSlotList(CK_TRUE, nullptr, &n), "C_GetSlotList");
    std::vector<CK_SLOT_ID> slots(n);
    if (n) module_->check(f->C_GetSlotList(CK_TRUE, slots.data(), &n), "C_GetSlotList");
    slots.resize(n);
    std::vector<CK_SLOT_ID> found;
    std::string seen;
    for (CK_SLOT_ID s : slots) {
        CK_TOKEN_INFO ti{};
        if (f->C_GetTokenInfo(s, &ti) != CKR_OK) continue;
        if (!(ti.flags & CKF_TOKEN_INITIALIZED)) continue;
        if (!seen.empty()) seen += ", ";
        seen += token_summary(ti);
        if (!matches(uri_.token, padded_field(ti.label, sizeof ti.label)) ||
            !matches(uri_.manufacturer,
                     padded_field(ti.manufacturerID, sizeof ti.manufacturerID)) ||
            !matches(uri_.serial, padded_field(ti.serialNumber, sizeof ti.serialNumber)) ||
            !matches(uri_.model, padded_field(ti.model, sizeof ti.model)))
            continue;
        if (uri_.slot_id && *uri_.slot_id != s) continue;
        if (uri_.slot_description || uri_.slot_manufacturer) {
            CK_SLOT_INFO si{};
            if (f->C_GetSlotInfo(s, &si) != CKR_OK) continue;
            if (!matches(uri_.slot_description,
                         padded_field(si.slotDescription, sizeof si.slotDescription)) ||
                !matches(uri_.slot_manufacturer,
                         padded_field(si.manufacturerID, sizeof si.manufacturerID)))
                continue;
        }
        found.push_back(s);
    }
    if (found.empty())
        throw Error("token not found: no token in module " + module_->path() + " matches " +
                    uri_.token_part() + " (tokens present: " + (seen.empty() ? "none" : seen) +
                    "; check pkcs11.token)");
    if (found.size() > 1)
        throw Error("token URI " + uri_.token_part() + " matches " + std::to_string(found.size()) +
                    " tokens in module " + module_->path() + " (" + seen +
                    "); add serial= to pkcs11.token");
    return found.front();
}

std::shared_ptr<Token> Token::open(const TokenOptions& opts) {
    std::shared_ptr<Token> t(new Token());
    t->uri_ = Uri::parse(opts.token_uri);
    t->pin_ = opts.pin;
    t->max_idle_ = opts.max_idle_sessions;
    t->module_ = Module::open(opts.module_path);
    t->slot_ = t->find_slot();

    CK_TOKEN_INFO ti{};
    t->module_->check(t->fn()->C_GetTokenInfo(t->slot_, &ti), "C_GetTokenInfo");
    t->label_ = padded_field(ti.label, sizeof ti.label);
    t->serial_ = padded_field(ti.serialNumber, sizeof ti.serialNumber);
    t->description_ = "token \"" + t->label_ + "\" (serial " + t->serial_ + ", module " +
                      t->module_->path() + ")";
    Uri exact;
    exact.token = t->label_;
    exact.manufacturer = padded_field(ti.manufacturerID, sizeof ti.manufacturerID);
    exact.serial = t->serial_;
    exact.model = padded_field(ti.model, sizeof ti.model);
    t->token_uri_ = exact.token_part();
    if (ti.flags & CKF_USER_PIN_LOCKED)
        throw Error("the user PIN of " + t->description_ +
                    " is locked (CKF_USER_PIN_LOCKED); unlock it with the SO PIN");
    if (!(ti.flags & CKF_USER_PIN_INITIALIZED))
        throw Error("the user PIN of " + t->description_ + " is not initialised (C_InitPIN)");

    // Log in now, so that a wrong PIN is reported at startup rather than at the first handshake.
    t->with_session([](CK_SESSION_HANDLE) { return 0; });
    log::info("pkcs11.token_open", {{"token", t->label_},
                                    {"serial", t->serial_},
                                    {"module", t->module_->path()},
                                    {"slot", t->slot_.load()}});
    return t;
}

Token::~Token() {
    // Sessions of the current epoch are ours and valid; stale ones are dropped (their handle
    // numbers may have been reused).
    std::lock_guard lk(mu_);
    for (CK_SESSION_HANDLE h : idle_) fn()->C_CloseSession(h);
    idle_.clear();
}

std::string Token::key_uri(std::string_view id) const {
    return token_uri_ + ";id=" + pct_encode(id) + ";type=private";
}

void Token::check(CK_RV rv, const char* call, std::string_view about) const {
    if (rv == CKR_OK) return;
    std::string msg = std::string(call) + " on " + description_ + " failed: " + rv_name(rv);
    if (!about.empty()) {
        msg += " (";
        msg += about;
        msg += ")";
    }
    if (rv == CKR_GENERAL_ERROR || rv == CKR_DEVICE_ERROR) msg += tpm2_pkcs11_hint(module_->path());
    throw Error(msg, rv);
}

Token::Lease Token::checkout(std::uint64_t& epoch_out) {
    CK_SESSION_HANDLE h = CK_INVALID_HANDLE;
    std::uint64_t epoch;
    {
        std::lock_guard lk(mu_);
        epoch = epoch_;
        if (!idle_.empty()) {
            h = idle_.back();
            idle_.pop_back();
        }
    }
    epoch_out = epoch;
    if (h == CK_INVALID_HANDLE) {
        check(fn()->C_OpenSession(slot_.load(), CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr,
                                  nullptr, &h),
              "C_OpenSession");
    }
    Lease lease(this, h, epoch);
    if (!logged_in_.load(std::memory_order_acquire)) {
        try {
            login(h);
        } catch (const Error& e) {
            if (is_session_lost(e.rv()) && e.rv() != CKR_USER_NOT_LOGGED_IN) lease.discard();
            throw;
        }
    }
    return lease;
}

void Token::give_back(CK_SESSION_HANDLE h, std::uint64_t epoch, bool discard) noexcept {
    {
        std::lock_guard lk(mu_);
        if (epoch != epoch_) return;  // stale: its number may belong to a new session now
        if (discard) return;          // broken: dropped, never closed (see recover())
        if (idle_.size() < max_idle_) {
            idle_.push_back(h);
            return;
        }
    }
    fn()->C_CloseSession(h);
}

void Token::login(CK_SESSION_HANDLE h) {
    std::lock_guard lk(login_mu_);
    if (logged_in_.load()) return;
    CK_SESSION_INFO si{};
    check(fn()->C_GetSessionInfo(h, &si), "C_GetSessionInfo");
    if (si.state == CKS_RO_USER_FUNCTIONS || si.state == CKS_RW_USER_FUNCTIONS) {
        logged_in_ = true;
        return;
    }
    SecretString pin = pin_.read();
    const CK_RV rv = fn()->C_Login(
        h, CKU_USER, reinterpret_cast<CK_UTF8CHAR*>(const_cast<char*>(pin.data())), pin.size());
    if (rv == CKR_OK || rv == CKR_USER_ALREADY_LOGGED_IN) {
        logged_in_ = true;
        return;
    }
    std::string hint;
    if (rv == CKR_PIN_INCORRECT || rv == CKR_PIN_LEN_RANGE || rv == CKR_PIN_INVALID)
        hint = "check the PIN in " + pin_.describe();
    else if (rv == CKR_PIN_LOCKED)
        hint = "the user PIN is locked; unlock it with the SO PIN";
    check(rv, "C_Login", hint);
}

void Token::recover(std::uint64_t seen_epoch, CK_RV why) {
    std::lock_guard lk(mu_);
    if (seen_epoch != epoch_) return;  // another thread already started over
    ++recoveries_;
    logged_in_ = false;
    if (why != CKR_USER_NOT_LOGGED_IN) {
        // The sessions are gone (closed by a reset or by C_CloseAllSessions elsewhere). Their
        // handles are dropped without C_CloseSession: the module may already have given the
        // same numbers to new sessions.
        ++epoch_;
        idle_.clear();
    }
    if (why == CKR_CRYPTOKI_NOT_INITIALIZED) {
        // The module was finalized under us: every session and handle is gone.
        try {
            module_->reinitialize();
        } catch (const Error&) {
            // The retry fails with the module's own error.
        }
    }
    if (why == CKR_DEVICE_REMOVED || why == CKR_TOKEN_NOT_PRESENT || why == CKR_SLOT_ID_INVALID ||
        why == CKR_TOKEN_NOT_RECOGNIZED || why == CKR_CRYPTOKI_NOT_INITIALIZED) {
        try {
            slot_ = find_slot();
        } catch (const Error&) {
            // Keep the old slot: the retry fails with the module's own error.
        }
    }
    log::warn("pkcs11.session_recovery",
              {{"token", label_}, {"serial", serial_}, {"reason", rv_name(why)}});
}

}  // namespace mtls::pkcs11
