// Where the token PIN comes from, and a string type that wipes its memory.
//
// A PIN is read only when logging in, kept in a SecretString for the duration of C_Login,
// and wiped. A PIN from the environment (pin_env) is the exception: the variable is read
// once, when the source is made from the config, kept in a SecretString for later logins,
// and then wiped in place and removed from the environment — so neither /proc/PID/environ
// nor a child process sees it. It is never logged, never put in an error message and never on a
// command line: errors describe the *source* ("pin_file /etc/mtls-agent/pin"), not the value.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "config/config.hpp"

namespace mtls::pkcs11 {

// Owns a secret; its bytes are wiped (OPENSSL_cleanse) on destruction and move-from.
class SecretString {
  public:
    SecretString() = default;
    explicit SecretString(std::string_view s);
    SecretString(const SecretString&) = delete;
    SecretString& operator=(const SecretString&) = delete;
    SecretString(SecretString&& o) noexcept;
    SecretString& operator=(SecretString&& o) noexcept;
    ~SecretString();

    const char* data() const noexcept { return data_; }
    std::size_t size() const noexcept { return size_; }
    bool empty() const noexcept { return size_ == 0; }

  private:
    void wipe() noexcept;
    char* data_ = nullptr;
    std::size_t size_ = 0;
};

struct PinSource {
    enum class Kind { file, env, credential };
    Kind kind = Kind::file;
    std::string where;  // file path, environment variable name, or credential name
    // pin_env: the value taken from the environment by from_config (shared by copies).
    std::shared_ptr<const SecretString> taken;

    static PinSource file(std::string path) { return {Kind::file, std::move(path), nullptr}; }
    static PinSource env(std::string name) { return {Kind::env, std::move(name), nullptr}; }
    static PinSource credential(std::string name) {
        return {Kind::credential, std::move(name), nullptr};
    }
    // For pin_env, takes the variable's value out of the environment (see above).
    static PinSource from_config(const config::Pkcs11& c);

    // "pin_file /etc/mtls-agent/pin", "pin_env MTLS_AGENT_PIN",
    // "pin_credential token-pin ($CREDENTIALS_DIRECTORY/token-pin)". Never the PIN.
    std::string describe() const;

    // Reads the PIN: the file's (or credential's) first line, or the variable's value, with
    // a trailing CR/LF removed. Throws pkcs11::Error naming the source when it is missing,
    // unreadable or empty.
    SecretString read() const;
};

}  // namespace mtls::pkcs11
