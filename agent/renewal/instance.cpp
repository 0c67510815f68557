#include "agent/renewal/instance.hpp"

#include "common/atomic_file.hpp"
#include "common/encoding.hpp"
#include "common/log.hpp"
#include "common/ossl_error.hpp"

#include <openssl/rand.h>

#include <cerrno>
#include <optional>
#include <stdexcept>
#include <system_error>

namespace mtls::renewal {
namespace {

std::string random_bytes(std::size_t n) {
    std::string out(n, '\0');
    if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1)
        throw ossl::Error("cannot make random bytes for a key id");
    return out;
}

std::optional<std::string> parse_instance(std::string text) {
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' '))
        text.pop_back();
    if (text.size() != 2 * kInstanceBytes || text.find(':') != std::string::npos)
        return std::nullopt;
    auto raw = encoding::hex_decode(text);
    if (!raw || raw->size() != kInstanceBytes) return std::nullopt;
    return raw;
}

}  // namespace

Instance Instance::load_or_create(const std::filesystem::path& state_dir,
                                  const std::string& from_state) {
    const auto path = state_dir / "instance";
    Instance in;
    std::optional<std::string> raw;
    try {
        auto text = files::read_private(path, 1024);
        raw = parse_instance(text);
        if (!raw)
            throw std::runtime_error(path.string() +
                                     " does not hold an instance id (16 hex digits); restore it "
                                     "from identity.json's \"instance\", or remove both files to "
                                     "start as a new agent");
    } catch (const std::system_error& e) {
        if (e.code().value() != ENOENT) throw;
    } catch (const std::length_error& e) {
        throw std::runtime_error(path.string() + " is not an instance id file: " + e.what());
    }
    if (!raw) {
        if (!from_state.empty()) raw = parse_instance(from_state);
        if (!raw) raw = random_bytes(kInstanceBytes);
        files::ensure_dir(state_dir, 0700);
        files::write_atomic(path, encoding::hex(*raw) + "\n", 0600);
        in.created_ = true;
        log::info("renewal.instance_created", {{"instance", encoding::hex(*raw)}});
    }
    in.raw_ = *raw;
    in.hex_ = encoding::hex(*raw);
    return in;
}

std::string Instance::new_key_id() const {
    return raw_ + random_bytes(kInstanceBytes);
}

bool Instance::owns(std::string_view key_id) const noexcept {
    return !raw_.empty() && key_id.size() == 2 * kInstanceBytes &&
           key_id.substr(0, kInstanceBytes) == raw_;
}

}  // namespace mtls::renewal
