#include "revocation/connection_check.hpp"

#include "common/log.hpp"
#include "revocation/process_checker.hpp"
#include "revocation/ssl_chain.hpp"

namespace mtls::revocation {

void check_connection(SSL* ssl, Policy policy, const std::string& target, const std::string& what) {
    if (policy == Policy::off || !ssl) return;
    auto chain = verified_chain(ssl);
    // A resumed session of this process was checked at its full handshake.
    if (chain.size() < 2 && SSL_session_reused(ssl) == 1) return;
    auto raw = raw_chain(chain);
    auto checker = process_checker();
    auto c = checker->cached(raw);
    if ((!c || c->status == Status::unknown) && raw.size() >= 2)
        if (auto staple = stapled_response(ssl); !staple.empty()) {
            (void)checker->feed_staple(staple, raw[0], raw[1]);
            c = checker->cached(raw);
        }
    const Verdict v = c ? *c : checker->check_chain(raw, {target});
    checker->record(target, v);
    if (allowed(policy, v)) {
        if (v.status == Status::unknown && v.problem != Problem::no_source)
            log::warn(
                "revocation.unknown_proceeding",
                {{"target", target}, {"policy", to_string(policy)}, {"verdict", v.describe()}});
        return;
    }
    log::warn("revocation.refused",
              {{"target", target}, {"policy", to_string(policy)}, {"verdict", v.describe()}});
    throw Refused(what +
                  (v.revoked() ? " certificate revoked: "
                               : " certificate has no verified revocation status "
                                 "(revocation = \"hard-fail\"): ") +
                  v.describe());
}

std::function<void(SSL*)> connection_check(Policy policy, std::string target, std::string what) {
    return [policy, target = std::move(target), what = std::move(what)](SSL* ssl) {
        check_connection(ssl, policy, target, what);
    };
}

}  // namespace mtls::revocation
