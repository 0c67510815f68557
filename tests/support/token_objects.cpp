#include "tests/support/token_objects.hpp"

#include "tests/support/cryptoki.hpp"

#include "common/encoding.hpp"

#include <cstring>
#include <stdexcept>

namespace mtls::test {
namespace {

// A logged-in read-write session on the token (closed, and the module finalised, on exit).
class Session {
  public:
    explicit Session(const TempToken& token) : m_((token.use(), token.module)) {
        auto slot = m_.find_token(token.label, token.serial);
        if (!slot) throw std::runtime_error("token " + token.label + " not found");
        check(m_->C_OpenSession(*slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr, &s_),
              "C_OpenSession");
        auto pin = token.read_pin();
        const CK_RV rv = m_->C_Login(s_, CKU_USER, reinterpret_cast<CK_UTF8CHAR_PTR>(pin.data()),
                                     static_cast<CK_ULONG>(pin.size()));
        if (rv != CKR_USER_ALREADY_LOGGED_IN) check(rv, "C_Login");
    }
    ~Session() { m_->C_CloseSession(s_); }
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;

    CK_FUNCTION_LIST* operator->() const { return m_.functions(); }
    CK_SESSION_HANDLE handle() const { return s_; }

    static void check(CK_RV rv, const char* what) {
        if (rv != CKR_OK)
            throw std::runtime_error(std::string(what) + " failed: CK_RV " + std::to_string(rv));
    }

    std::vector<CK_OBJECT_HANDLE> find(CK_ATTRIBUTE* tmpl, CK_ULONG n) {
        check(m_->C_FindObjectsInit(s_, tmpl, n), "C_FindObjectsInit");
        std::vector<CK_OBJECT_HANDLE> out;
        while (true) {
            CK_OBJECT_HANDLE buf[64];
            CK_ULONG got = 0;
            if (m_->C_FindObjects(s_, buf, 64, &got) != CKR_OK || got == 0) break;
            out.insert(out.end(), buf, buf + got);
        }
        m_->C_FindObjectsFinal(s_);
        return out;
    }

    std::string attr(CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type) {
        CK_ATTRIBUTE a{type, nullptr, 0};
        if (m_->C_GetAttributeValue(s_, o, &a, 1) != CKR_OK ||
            a.ulValueLen == CK_UNAVAILABLE_INFORMATION)
            return "";
        std::string v(a.ulValueLen, '\0');
        a.pValue = v.data();
        if (m_->C_GetAttributeValue(s_, o, &a, 1) != CKR_OK) return "";
        v.resize(a.ulValueLen);
        return v;
    }

  private:
    CryptokiModule m_;
    CK_SESSION_HANDLE s_ = 0;
};

std::string raw_id(const std::string& id_hex) {
    auto raw = encoding::hex_decode(id_hex);
    if (!raw) throw std::invalid_argument("not hex: " + id_hex);
    return *raw;
}

}  // namespace

std::vector<TokenObject> token_objects(const TempToken& token) {
    Session s(token);
    std::vector<TokenObject> out;
    for (CK_OBJECT_HANDLE o : s.find(nullptr, 0)) {
        TokenObject t;
        t.id_hex = encoding::hex(s.attr(o, CKA_ID));
        t.label = s.attr(o, CKA_LABEL);
        const auto cls = s.attr(o, CKA_CLASS);
        if (cls.size() == sizeof(CK_OBJECT_CLASS)) std::memcpy(&t.cls, cls.data(), cls.size());
        out.push_back(std::move(t));
    }
    return out;
}

std::vector<TokenObject> token_objects_with_id(const TempToken& token,
                                               const std::string& id_hex_prefix) {
    std::vector<TokenObject> out;
    for (auto& o : token_objects(token))
        if (!id_hex_prefix.empty() && o.id_hex.rfind(id_hex_prefix, 0) == 0)
            out.push_back(std::move(o));
    return out;
}

std::size_t destroy_token_objects(const TempToken& token, const std::string& id_hex) {
    Session s(token);
    auto id = raw_id(id_hex);
    CK_ATTRIBUTE tmpl[] = {{CKA_ID, id.data(), static_cast<CK_ULONG>(id.size())}};
    std::size_t n = 0;
    for (CK_OBJECT_HANDLE o : s.find(tmpl, 1)) {
        Session::check(s->C_DestroyObject(s.handle(), o), "C_DestroyObject");
        ++n;
    }
    return n;
}

void make_key_objects(const TempToken& token, const std::string& id_hex,
                      const std::string& public_label, const std::string& private_label,
                      bool keep_private) {
    Session s(token);
    auto id = raw_id(id_hex);
    // DER OID prime256v1
    static const unsigned char kP256[] = {0x06, 0x08, 0x2a, 0x86, 0x48,
                                          0xce, 0x3d, 0x03, 0x01, 0x07};
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    std::string pub_label = public_label, priv_label = private_label;
    std::vector<CK_ATTRIBUTE> pub = {
        {CKA_TOKEN, &yes, sizeof yes},
        {CKA_VERIFY, &yes, sizeof yes},
        {CKA_EC_PARAMS, const_cast<unsigned char*>(kP256), sizeof kP256},
        {CKA_ID, id.data(), static_cast<CK_ULONG>(id.size())},
    };
    std::vector<CK_ATTRIBUTE> priv = {
        {CKA_TOKEN, &yes, sizeof yes},     {CKA_PRIVATE, &yes, sizeof yes},
        {CKA_SENSITIVE, &yes, sizeof yes}, {CKA_EXTRACTABLE, &no, sizeof no},
        {CKA_SIGN, &yes, sizeof yes},      {CKA_ID, id.data(), static_cast<CK_ULONG>(id.size())},
    };
    if (!pub_label.empty())
        pub.push_back({CKA_LABEL, pub_label.data(), static_cast<CK_ULONG>(pub_label.size())});
    if (!priv_label.empty())
        priv.push_back({CKA_LABEL, priv_label.data(), static_cast<CK_ULONG>(priv_label.size())});
    CK_MECHANISM mech{CKM_EC_KEY_PAIR_GEN, nullptr, 0};
    CK_OBJECT_HANDLE hpub = 0, hpriv = 0;
    Session::check(
        s->C_GenerateKeyPair(s.handle(), &mech, pub.data(), static_cast<CK_ULONG>(pub.size()),
                             priv.data(), static_cast<CK_ULONG>(priv.size()), &hpub, &hpriv),
        "C_GenerateKeyPair");
    if (!keep_private) Session::check(s->C_DestroyObject(s.handle(), hpriv), "C_DestroyObject");
}

}  // namespace mtls::test
