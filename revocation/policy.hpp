// Applying a per-target policy (off | soft-fail | hard-fail) to a verdict: what every
// caller (proxy, EST client, token client) decides the same way.
#pragma once

#include <string>

#include "revocation/verdict.hpp"

namespace mtls::revocation {

enum class Policy { off, soft_fail, hard_fail };

// Whether the connection may be used. hard-fail: only a verified "good". soft-fail never
// refuses (issue #19): a revoked or unknown status is logged, counted and shown, and the
// connection proceeds.
inline bool allowed(Policy p, const Verdict& v) {
    return p != Policy::hard_fail || v.status == Status::good;
}

inline std::string_view to_string(Policy p) {
    return p == Policy::off ? "off" : p == Policy::hard_fail ? "hard-fail" : "soft-fail";
}

}  // namespace mtls::revocation
