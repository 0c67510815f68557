#include "revocation/verdict.hpp"

#include <array>
#include <cctype>
#include <ctime>

namespace mtls::revocation {
namespace {

// RFC 5280 §5.3.1; code 7 is not used.
constexpr std::array<std::string_view, 11> kReasonNames = {
    "unspecified",   "keyCompromise",        "cACompromise",    "affiliationChanged",
    "superseded",    "cessationOfOperation", "certificateHold", "",
    "removeFromCRL", "privilegeWithdrawn",   "aACompromise"};

bool iequal_ascii(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (std::tolower(static_cast<unsigned char>(a[i])) !=
            std::tolower(static_cast<unsigned char>(b[i])))
            return false;
    return true;
}

}  // namespace

std::string_view to_string(Status s) {
    switch (s) {
        case Status::good:
            return "good";
        case Status::revoked:
            return "revoked";
        case Status::unknown:
            return "unknown";
    }
    return "unknown";
}

std::string_view to_string(Source s) {
    switch (s) {
        case Source::none:
            return "none";
        case Source::staple:
            return "staple";
        case Source::ocsp:
            return "ocsp";
        case Source::crl:
            return "crl";
        case Source::crl_file:
            return "crl-file";
        case Source::cache:
            return "cache";
    }
    return "none";
}

std::string_view to_string(Problem p) {
    switch (p) {
        case Problem::none:
            return "none";
        case Problem::no_source:
            return "no_source";
        case Problem::no_issuer:
            return "no_issuer";
        case Problem::unreachable:
            return "unreachable";
        case Problem::bad_response:
            return "bad_response";
        case Problem::responder_unknown:
            return "responder_unknown";
        case Problem::not_checked:
            return "not_checked";
    }
    return "none";
}

std::string_view reason_name(int reason) {
    if (reason < 0 || reason >= static_cast<int>(kReasonNames.size())) return "";
    return kReasonNames[static_cast<std::size_t>(reason)];
}

int reason_from_name(std::string_view name) {
    for (std::size_t i = 0; i < kReasonNames.size(); ++i)
        if (!kReasonNames[i].empty() && iequal_ascii(kReasonNames[i], name))
            return static_cast<int>(i);
    return -1;
}

std::string iso_time(Clock::time_point t) {
    const std::time_t tt = Clock::to_time_t(t);
    std::tm tm{};
    gmtime_r(&tt, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

std::string Verdict::describe() const {
    const CertVerdict& c = culprit;
    std::string s(to_string(status));
    if (status == Status::good) {
        s += " (source " + std::string(to_string(source)) + ")";
        return s;
    }
    s += ": " + (c.subject.empty() ? std::string("certificate") : c.subject) + " (serial " +
         c.serial + ", depth " + std::to_string(c.depth) + ")";
    if (status == Status::revoked) {
        if (c.reason >= 0) s += ", reason " + std::string(reason_name(c.reason));
        if (c.revoked_at) s += ", revoked at " + iso_time(*c.revoked_at);
    } else {
        s += ", " + std::string(to_string(c.problem));
        if (!c.why.empty()) s += ": " + c.why;
    }
    s += " (source " + std::string(to_string(c.source == Source::cache ? c.origin : c.source)) +
         (c.source == Source::cache ? ", cached" : "") + ")";
    return s;
}

Verdict combine(std::vector<CertVerdict> certs) {
    Verdict v;
    v.status = Status::good;
    const CertVerdict* culprit = certs.empty() ? nullptr : &certs.front();
    bool any_unknown = false;
    for (const auto& c : certs) {
        if (c.status == Status::revoked) {
            v.status = Status::revoked;
            culprit = &c;
            break;
        }
        if (c.status == Status::unknown && !any_unknown) {
            any_unknown = true;
            culprit = &c;
        }
    }
    if (v.status != Status::revoked && any_unknown) v.status = Status::unknown;
    if (certs.empty()) {
        v.status = Status::unknown;
        v.problem = Problem::no_issuer;
        v.culprit.problem = Problem::no_issuer;
        v.culprit.why = "empty chain";
        return v;
    }
    v.culprit = *culprit;
    v.problem = v.culprit.problem;
    v.source = certs.front().source;
    v.this_update = certs.front().this_update;
    v.next_update = certs.front().next_update;
    v.certs = std::move(certs);
    return v;
}

}  // namespace mtls::revocation
