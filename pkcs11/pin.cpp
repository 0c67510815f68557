#include "pkcs11/pin.hpp"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "pkcs11/errors.hpp"

namespace mtls::pkcs11 {

SecretString::SecretString(std::string_view s) {
    if (s.empty()) return;
    data_ = new char[s.size() + 1];
    std::memcpy(data_, s.data(), s.size());
    data_[s.size()] = '\0';
    size_ = s.size();
}

SecretString::SecretString(SecretString&& o) noexcept : data_(o.data_), size_(o.size_) {
    o.data_ = nullptr;
    o.size_ = 0;
}

SecretString& SecretString::operator=(SecretString&& o) noexcept {
    if (this != &o) {
        wipe();
        data_ = o.data_;
        size_ = o.size_;
        o.data_ = nullptr;
        o.size_ = 0;
    }
    return *this;
}

SecretString::~SecretString() {
    wipe();
}

void SecretString::wipe() noexcept {
    if (data_) {
        OPENSSL_cleanse(data_, size_ + 1);
        delete[] data_;
    }
    data_ = nullptr;
    size_ = 0;
}

PinSource PinSource::from_config(const config::Pkcs11& c) {
    switch (c.pin_source) {
        case config::Pkcs11::PinSource::env: {
            PinSource s = env(c.pin_env);
            if (char* v = c.pin_env.empty() ? nullptr : std::getenv(c.pin_env.c_str())) {
                std::string_view sv(v);
                while (!sv.empty() && (sv.back() == '\n' || sv.back() == '\r')) sv.remove_suffix(1);
                if (!sv.empty()) {  // (an empty one stays: read() says it is empty)
                    s.taken = std::make_shared<const SecretString>(sv);
                    OPENSSL_cleanse(v, std::strlen(v));
                    ::unsetenv(c.pin_env.c_str());
                }
            }
            return s;
        }
        case config::Pkcs11::PinSource::credential:
            return credential(c.pin_credential);
        case config::Pkcs11::PinSource::file:
        default:
            return file(c.pin_file);
    }
}

std::string PinSource::describe() const {
    switch (kind) {
        case Kind::env:
            return "pin_env " + where;
        case Kind::credential:
            return "pin_credential " + where + " ($CREDENTIALS_DIRECTORY/" + where + ")";
        case Kind::file:
        default:
            return "pin_file " + where;
    }
}

namespace {

// Reads at most a small file into a fixed buffer that is wiped afterwards.
SecretString read_pin_file(const std::string& path, const std::string& what) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) throw Error("cannot read the token PIN from " + what + ": " + std::strerror(errno));
    char buf[512];
    std::size_t n = 0;
    while (n < sizeof buf) {
        const ssize_t r = ::read(fd, buf + n, sizeof buf - n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            const int e = errno;
            ::close(fd);
            OPENSSL_cleanse(buf, sizeof buf);
            throw Error("cannot read the token PIN from " + what + ": " + std::strerror(e));
        }
        if (r == 0) break;
        n += static_cast<std::size_t>(r);
    }
    ::close(fd);
    std::size_t len = 0;
    while (len < n && buf[len] != '\n' && buf[len] != '\r') ++len;
    if (len == n && n == sizeof buf) {
        OPENSSL_cleanse(buf, sizeof buf);
        throw Error("the token PIN in " + what + " is too long (over 511 bytes)");
    }
    SecretString pin(std::string_view(buf, len));
    OPENSSL_cleanse(buf, sizeof buf);
    if (pin.empty()) throw Error("the token PIN in " + what + " is empty");
    return pin;
}

}  // namespace

SecretString PinSource::read() const {
    switch (kind) {
        case Kind::env: {
            if (where.empty()) throw Error("pin_env names no environment variable");
            if (taken) return SecretString(std::string_view(taken->data(), taken->size()));
            const char* v = std::getenv(where.c_str());
            if (!v)
                throw Error("cannot read the token PIN: environment variable " + where +
                            " is not set");
            std::string_view sv(v);
            while (!sv.empty() && (sv.back() == '\n' || sv.back() == '\r')) sv.remove_suffix(1);
            if (sv.empty())
                throw Error("the token PIN in environment variable " + where + " is empty");
            return SecretString(sv);
        }
        case Kind::credential: {
            if (where.empty() || where.find('/') != std::string::npos || where == "." ||
                where == "..")
                throw Error("pin_credential must be a credential name without '/'");
            const char* dir = std::getenv("CREDENTIALS_DIRECTORY");
            if (!dir || !*dir)
                throw Error("cannot read the token PIN from " + describe() +
                            ": CREDENTIALS_DIRECTORY is not set (set LoadCredential= or "
                            "SetCredentialEncrypted= in the unit)");
            return read_pin_file(std::string(dir) + "/" + where, describe());
        }
        case Kind::file:
        default:
            if (where.empty()) throw Error("pin_file names no file");
            return read_pin_file(where, describe());
    }
}

}  // namespace mtls::pkcs11
