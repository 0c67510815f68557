#include "agent/renewal/own_revocation.hpp"

#include "agent/metrics/prometheus.hpp"
#include "common/log.hpp"
#include "common/ossl.hpp"
#include "revocation/checker.hpp"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <vector>

namespace mtls::renewal {
namespace {

using SysClock = std::chrono::system_clock;

std::vector<ossl::X509Ptr> own_rev_certs_from_pem(const std::string& pem) {
    std::vector<ossl::X509Ptr> out;
    if (pem.empty()) return out;
    ossl::Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    while (X509* c = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) out.emplace_back(c);
    ERR_clear_error();  // the end of the data reads as an error
    return out;
}

bool own_rev_self_signed(X509* c) {
    return X509_check_issued(c, c) == X509_V_OK;
}

// "our certificate was revoked (keyCompromise, 2026-12-06T23:00:00Z)", or for an issuer
// "our certificate's issuer CN=… was revoked (…)".
std::string own_rev_problem(const revocation::Verdict& v) {
    const auto& c = v.culprit;
    std::string why = c.reason >= 0 ? std::string(revocation::reason_name(c.reason)) : "no reason";
    why +=
        c.revoked_at ? ", " + revocation::iso_time(*c.revoked_at) : std::string(", time unknown");
    const std::string what =
        c.depth == 0 ? "our certificate" : "our certificate's issuer " + c.subject;
    return what + " was revoked (" + why +
           "); its identity is no longer used; enrolling a new key with the bootstrap credentials";
}

std::string own_rev_iso(const std::optional<SysClock::time_point>& t) {
    return t ? revocation::iso_time(*t) : std::string();
}

}  // namespace

OwnRevocationWatch::OwnRevocationWatch(const config::Renewal& cfg,
                                       identity::IdentityStore& identities, Renewer& renewer)
    : identities_(identities), renewer_(renewer), cfg_(cfg) {
    // A new identity is checked at once (a certificate the CA revoked before we got it, or
    // one whose issuer is revoked).
    sub_ = identities_.subscribe(
        [this](const identity::IdentityPtr& now, const identity::IdentityPtr&) {
            if (!now) return;
            {
                std::lock_guard lock(mu_);
                wake_ = true;
            }
            cv_.notify_all();
        });
}

OwnRevocationWatch::~OwnRevocationWatch() {
    stop();
    sub_.reset();
}

void OwnRevocationWatch::run() {
    thread_ = std::jthread([this](std::stop_token st) { loop(st); });
}

void OwnRevocationWatch::stop() {
    if (thread_.joinable()) {
        thread_.request_stop();
        cv_.notify_all();
        thread_.join();
    }
}

void OwnRevocationWatch::update_config(const config::Renewal& cfg) {
    {
        std::lock_guard lock(mu_);
        cfg_ = cfg;
        wake_ = true;
    }
    cv_.notify_all();
}

void OwnRevocationWatch::loop(std::stop_token stop) {
    auto next = SysClock::time_point::max();
    while (!stop.stop_requested()) {
        {
            std::unique_lock lock(mu_);
            cv_.wait_until(lock, stop, next, [&] { return wake_; });
            if (stop.stop_requested()) return;
            wake_ = false;
        }
        next = check_once();
    }
}

SysClock::time_point OwnRevocationWatch::check_once() {
    config::Renewal cfg;
    {
        std::lock_guard lock(mu_);
        cfg = cfg_;
    }
    const auto now = SysClock::now();
    if (cfg.revocation_check == config::Renewal::RevocationCheck::off) {
        std::lock_guard lock(mu_);
        result_ = "off";
        detail_.clear();
        next_at_.reset();
        return SysClock::time_point::max();  // until a reload turns it on
    }
    auto id = identities_.current();
    if (!id) {  // enrolling: the next identity wakes us
        std::lock_guard lock(mu_);
        next_at_.reset();
        return SysClock::time_point::max();
    }
    const auto interval = cfg.revocation_check_interval;
    // Our own checker: answers are kept no longer than the interval, so each check asks the
    // CA afresh; no background refresh (this thread is the schedule).
    if (!checker_ || checker_age_ != interval) {
        revocation::Settings s;
        s.max_cache_age = interval;
        s.background_refresh = false;
        s.failure_backoff = std::min<std::chrono::seconds>(s.failure_backoff, interval);
        checker_ = std::make_unique<revocation::Checker>(s);
        checker_age_ = interval;
    }
    // Leaf, intermediates, and the root (from the EST CA certificates) so that the last
    // intermediate is checked against its issuer too.
    std::vector<X509*> chain{id->leaf()};
    for (const auto& c : id->chain()) chain.push_back(c.get());
    const auto anchors = own_rev_certs_from_pem(renewer_.est_ca_pem());
    if (!own_rev_self_signed(chain.back()))
        for (const auto& a : anchors)
            if (X509_check_issued(a.get(), chain.back()) == X509_V_OK) {
                chain.push_back(a.get());
                break;
            }
    const auto verdict = checker_->check_chain(chain, {"own"});
    const std::string result(revocation::to_string(verdict.status));
    const std::string detail = verdict.describe();

    auto next = now + interval;
    if (verdict.next_update && *verdict.next_update > now && *verdict.next_update < next)
        next = *verdict.next_update + std::chrono::seconds(1);  // the CA's next CRL / answer
    const std::string serial = verdict.certs.empty() ? std::string() : verdict.certs.front().serial;
    bool log_it = false;
    {
        std::lock_guard lock(mu_);
        last_at_ = now;
        next_at_ = next;
        result_ = result;
        detail_ = detail;
        serial_ = serial;
        ++counts_[result];
        log_it = last_logged_ != result + detail;
        if (log_it) last_logged_ = result + detail;
    }
    if (verdict.revoked()) {
        // Still the identity we checked (not already replaced or burnt meanwhile)?
        if (identities_.current() != id) return next;
        log::error("renewal.own_certificate_revoked",
                   {{"serial", verdict.culprit.serial},
                    {"depth", verdict.culprit.depth},
                    {"reason", verdict.culprit.reason >= 0
                                   ? std::string(revocation::reason_name(verdict.culprit.reason))
                                   : std::string("-")},
                    {"revoked_at", own_rev_iso(verdict.culprit.revoked_at)},
                    {"detail", detail}});
        renewer_.compromised("revoked", detail, own_rev_problem(verdict), {}, {});
    } else if (verdict.status == revocation::Status::unknown) {
        // A CA that names no responder and no CRL is a setup, not an outage: said at info.
        if (log_it)
            log::write(
                verdict.problem == revocation::Problem::no_source ? log::Level::info
                                                                  : log::Level::warning,
                "renewal.own_revocation_unknown",
                {{"detail", detail},
                 {"action",
                  "none: the identity stays in use; checked again in " +
                      std::to_string(
                          std::chrono::duration_cast<std::chrono::seconds>(next - now).count()) +
                      " s"}});
    } else if (log_it) {
        log::info("renewal.own_revocation_good", {{"serial", serial}, {"detail", detail}});
    }
    return next;
}

nlohmann::json OwnRevocationWatch::status_json() const {
    std::lock_guard lock(mu_);
    auto t = [](const std::optional<SysClock::time_point>& v) {
        return v ? nlohmann::json(revocation::iso_time(*v)) : nlohmann::json(nullptr);
    };
    return {
        {"mode",
         cfg_.revocation_check == config::Renewal::RevocationCheck::off ? "off" : "ocsp-then-crl"},
        {"interval_s", cfg_.revocation_check_interval.count()},
        {"last_check_at", t(last_at_)},
        {"next_check_at", t(next_at_)},
        {"result",
         cfg_.revocation_check == config::Renewal::RevocationCheck::off ? "off" : result_},
        {"detail", detail_},
        {"serial", serial_}};
}

std::string OwnRevocationWatch::metrics() const {
    std::lock_guard lock(mu_);
    metrics::Writer w;
    w.family("mtls_agent_own_revocation_last_check_timestamp_seconds",
             "When our own certificate was last checked for revocation (Unix seconds; 0: never).",
             "gauge");
    w.sample("mtls_agent_own_revocation_last_check_timestamp_seconds", {},
             last_at_ ? static_cast<double>(std::chrono::duration_cast<std::chrono::seconds>(
                                                last_at_->time_since_epoch())
                                                .count())
                      : 0.0);
    w.family("mtls_agent_own_revocation_result",
             "The result of the last revocation check of our own certificate (1 for the "
             "current one).",
             "gauge");
    for (const char* r : {"good", "revoked", "unknown"})
        w.sample("mtls_agent_own_revocation_result", {{"result", r}}, result_ == r ? 1 : 0);
    w.family("mtls_agent_own_revocation_checks_total",
             "Revocation checks of our own certificate, by result.", "counter");
    for (const char* r : {"good", "revoked", "unknown"}) {
        auto it = counts_.find(r);
        w.sample("mtls_agent_own_revocation_checks_total", {{"result", r}},
                 it == counts_.end() ? 0.0 : static_cast<double>(it->second));
    }
    return w.text();
}

}  // namespace mtls::renewal
