// What a revocation check concluded, for one certificate and for a whole chain.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mtls::revocation {

using Clock = std::chrono::system_clock;

enum class Status { good, revoked, unknown };

// Where the answer came from. `cache` is used for an answer reused from an earlier fetch
// (the original source is kept in CertVerdict::origin).
enum class Source { none, staple, ocsp, crl, crl_file, cache };

// Why a status is unknown.
enum class Problem {
    none,
    no_source,          // the certificate names no OCSP responder and no CRL (and no local CRL)
    no_issuer,          // the issuer's certificate is not in the chain
    unreachable,        // the responder / CRL server could not be reached or timed out
    bad_response,       // an answer that does not parse, is not signed by whom it must, is stale…
    responder_unknown,  // the responder answered "unknown" (or unauthorized / tryLater)
    not_checked,        // no I/O allowed (cached()) and nothing cached
};

// The verdict on one certificate of a chain.
struct CertVerdict {
    Status status = Status::unknown;
    Source source = Source::none;  // of this answer (cache when reused)
    Source origin = Source::none;  // the source that produced the answer originally
    Problem problem = Problem::none;
    std::string subject;  // RFC 2253 subject, for messages
    std::string serial;   // upper-case hex
    int depth = 0;        // 0 = leaf
    int reason = -1;      // CRLReason code (RFC 5280 §5.3.1), -1 when none
    std::optional<Clock::time_point> revoked_at, this_update, next_update;
    std::string why;  // detail for unknown (e.g. "connect failed: …")
};

// The verdict on a chain: good when every checked certificate is good; revoked when one is
// (the first, leaf side, is named); otherwise unknown (the first unknown one is named).
struct Verdict {
    Status status = Status::unknown;
    Source source = Source::none;  // the leaf's source
    Problem problem = Problem::none;
    CertVerdict culprit;             // revoked/unknown: the certificate concerned; good: the leaf
    std::vector<CertVerdict> certs;  // leaf first, anchor excluded
    std::optional<Clock::time_point> this_update, next_update;  // the leaf's answer

    bool good() const { return status == Status::good; }
    bool revoked() const { return status == Status::revoked; }
    // One line for logs and errors, e.g. "revoked: CN=partner (serial 0A1B…, depth 0),
    // reason keyCompromise, at 2026-12-06T23:00:00Z (source ocsp)".
    std::string describe() const;
};

std::string_view to_string(Status s);
std::string_view to_string(Source s);   // "staple", "ocsp", "crl", "crl-file", "cache", "none"
std::string_view to_string(Problem p);  // snake_case: "no_source", "unreachable", …
// RFC 5280 reason names ("keyCompromise"); "unspecified" for 0, "" for -1.
std::string_view reason_name(int reason);
// CRLReason from its name (as reason_name gives it, case-insensitive); -1 when not one.
int reason_from_name(std::string_view name);
// RFC 3339 UTC, seconds.
std::string iso_time(Clock::time_point t);

// Combines per-certificate verdicts (leaf first) into a chain verdict.
Verdict combine(std::vector<CertVerdict> certs);

}  // namespace mtls::revocation
