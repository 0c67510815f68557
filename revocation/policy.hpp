// Applying a per-target policy (off | soft-fail | hard-fail) to a verdict: what every
// caller (proxy, EST client, token client) decides the same way.
#pragma once

#include <string>

#include "revocation/verdict.hpp"

namespace mtls::revocation {

enum class Policy { off, soft_fail, hard_fail };

// Whether the connection may be used: revoked never; unknown only under soft-fail.
inline bool allowed(Policy p, const Verdict& v) {
    if (p == Policy::off || v.status == Status::good) return true;
    if (v.status == Status::revoked) return false;
    return p == Policy::soft_fail;
}

inline std::string_view to_string(Policy p) {
    return p == Policy::off ? "off" : p == Policy::hard_fail ? "hard-fail" : "soft-fail";
}

}  // namespace mtls::revocation
