#include "common/encoding.hpp"

#include <openssl/evp.h>
#include <openssl/sha.h>

#include <algorithm>
#include <memory>
#include <new>
#include <stdexcept>

namespace mtls::encoding {
namespace {

struct EncodeCtxDeleter {
    void operator()(EVP_ENCODE_CTX* c) const noexcept { EVP_ENCODE_CTX_free(c); }
};

// `in` (already free of whitespace) holds only base64 symbols followed by at most two '='.
// Returns the decoded bytes, nullopt on a bad character, a bad length or data after '='.
std::optional<std::string> decode_std(std::string in) {
    // EVP_DecodeBlock itself trims some characters ('-', blanks) at the ends: check first.
    for (char c : in)
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '+' || c == '/' || c == '='))
            return std::nullopt;
    std::size_t padding = 0;
    while (padding < in.size() && in[in.size() - 1 - padding] == '=') ++padding;
    const std::size_t symbols = in.size() - padding;
    if (padding > 2 || symbols % 4 == 1) return std::nullopt;
    if (padding && in.size() % 4 != 0) return std::nullopt;
    if (in.find('=') < symbols) return std::nullopt;  // '=' inside the data
    if (symbols == 0) return padding ? std::nullopt : std::optional<std::string>(std::string());
    // EVP_DecodeBlock wants whole quanta: restore the padding a sender left out.
    in.resize(symbols);
    const std::size_t missing = (4 - symbols % 4) % 4;
    in.append(missing, '=');
    std::string out(in.size() / 4 * 3, '\0');
    const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                  reinterpret_cast<const unsigned char*>(in.data()),
                                  static_cast<int>(in.size()));
    if (n < 0) return std::nullopt;
    // EVP_DecodeBlock counts the padding's zero bytes too.
    const std::size_t pad_bytes = missing ? missing : padding;
    out.resize(static_cast<std::size_t>(n) - pad_bytes);
    return out;
}

}  // namespace

std::string base64(std::string_view bytes) {
    std::string out((bytes.size() + 2) / 3 * 4 + 1, '\0');
    const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                  reinterpret_cast<const unsigned char*>(bytes.data()),
                                  static_cast<int>(bytes.size()));
    out.resize(static_cast<std::size_t>(n));
    return out;
}

std::string base64_lines(std::string_view bytes) {
    std::unique_ptr<EVP_ENCODE_CTX, EncodeCtxDeleter> ctx(EVP_ENCODE_CTX_new());
    if (!ctx) throw std::bad_alloc();
    EVP_EncodeInit(ctx.get());
    // 48 input bytes make one 64-character line plus "\n".
    std::string out((bytes.size() + 47) / 48 * 65 + 66, '\0');
    auto* dst = reinterpret_cast<unsigned char*>(out.data());
    std::size_t used = 0;
    const auto* src = reinterpret_cast<const unsigned char*>(bytes.data());
    std::size_t left = bytes.size();
    while (left > 0) {  // EVP_EncodeUpdate takes an int length
        const int chunk = static_cast<int>(std::min<std::size_t>(left, 48u * 1024 * 1024));
        int n = 0;
        if (EVP_EncodeUpdate(ctx.get(), dst + used, &n, src, chunk) != 1)
            throw std::length_error("base64_lines: input too large");
        used += static_cast<std::size_t>(n);
        src += chunk;
        left -= static_cast<std::size_t>(chunk);
    }
    int n = 0;
    EVP_EncodeFinal(ctx.get(), dst + used, &n);
    used += static_cast<std::size_t>(n);
    out.resize(used);
    return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
    std::string in;
    in.reserve(text.size());
    for (char c : text)
        if (c != '\r' && c != '\n' && c != ' ' && c != '\t') in += c;
    return decode_std(std::move(in));
}

std::string base64url(std::string_view bytes) {
    std::string out = base64(bytes);
    while (!out.empty() && out.back() == '=') out.pop_back();
    for (char& c : out) {
        if (c == '+')
            c = '-';
        else if (c == '/')
            c = '_';
    }
    return out;
}

std::optional<std::string> base64url_decode(std::string_view text) {
    std::string in(text);
    for (char& c : in) {
        if (c == '+' || c == '/') return std::nullopt;  // not in the base64url alphabet
        if (c == '-')
            c = '+';
        else if (c == '_')
            c = '/';
    }
    return decode_std(std::move(in));
}

std::string hex(std::string_view bytes) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    out.reserve(bytes.size() * 2);
    for (unsigned char c : bytes) {
        out += digits[c >> 4];
        out += digits[c & 15];
    }
    return out;
}

std::optional<std::string> hex_decode(std::string_view text) {
    auto nibble = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    };
    std::string out;
    int hi = -1;
    for (char c : text) {
        if (c == ':') {
            if (hi >= 0) return std::nullopt;
            continue;
        }
        int v = nibble(c);
        if (v < 0) return std::nullopt;
        if (hi < 0) {
            hi = v;
        } else {
            out += static_cast<char>((hi << 4) | v);
            hi = -1;
        }
    }
    if (hi >= 0) return std::nullopt;
    return out;
}

std::string sha256(std::string_view bytes) {
    unsigned char md[SHA256_DIGEST_LENGTH];
    unsigned int len = 0;
    EVP_Digest(bytes.data(), bytes.size(), md, &len, EVP_sha256(), nullptr);
    return std::string(reinterpret_cast<char*>(md), len);
}

}  // namespace mtls::encoding
