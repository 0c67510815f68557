#include "tests/sandbox/stapler.hpp"

#include "common/log.hpp"
#include "revocation/fetch.hpp"
#include "revocation/ocsp.hpp"

#include <openssl/ocsp.h>

#include <cstring>

namespace mtls::sandbox {

Stapler::Stapler(X509* leaf, X509* issuer, std::string url, std::chrono::milliseconds period,
                 bool enabled)
    : url_(std::move(url)), period_(period), enabled_(enabled) {
    X509_up_ref(leaf);
    leaf_.reset(leaf);
    X509_up_ref(issuer);
    issuer_.reset(issuer);
    thread_ = std::thread([this] { loop(); });
}

Stapler::~Stapler() {
    {
        std::lock_guard lk(mu_);
        stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
}

void Stapler::install(SSL_CTX* ctx) {
    SSL_CTX_set_tlsext_status_cb(ctx, &Stapler::status_cb);
    SSL_CTX_set_tlsext_status_arg(ctx, this);
}

int Stapler::status_cb(SSL* ssl, void* arg) {
    auto* self = static_cast<Stapler*>(arg);
    if (!self->enabled_) return SSL_TLSEXT_ERR_NOACK;
    std::lock_guard lk(self->mu_);
    if (self->der_.empty()) return SSL_TLSEXT_ERR_NOACK;
    auto* copy = static_cast<unsigned char*>(OPENSSL_malloc(self->der_.size()));
    if (!copy) return SSL_TLSEXT_ERR_NOACK;
    std::memcpy(copy, self->der_.data(), self->der_.size());
    if (SSL_set_tlsext_status_ocsp_resp(ssl, copy, static_cast<long>(self->der_.size())) != 1) {
        OPENSSL_free(copy);
        return SSL_TLSEXT_ERR_NOACK;
    }
    ++self->sent_;
    return SSL_TLSEXT_ERR_OK;
}

void Stapler::set_enabled(bool on) {
    enabled_ = on;
    if (on) refresh_now();
}

void Stapler::refresh_now(std::chrono::milliseconds wait) {
    std::unique_lock lk(mu_);
    const auto gen = generation_;
    wake_ = true;
    cv_.notify_all();
    cv_.wait_for(lk, wait, [&] { return generation_ != gen || stop_; });
}

void Stapler::fetch_once() {
    std::string der, error;
    try {
        auto body = revocation::ocsp::build_request(leaf_.get(), issuer_.get(), false);
        der = revocation::http_fetch(url_, body, "application/ocsp-request",
                                     {std::chrono::milliseconds(3000), 64 * 1024});
        const auto* p = reinterpret_cast<const unsigned char*>(der.data());
        revocation::OcspResponsePtr r(
            d2i_OCSP_RESPONSE(nullptr, &p, static_cast<long>(der.size())));
        if (!r || OCSP_response_status(r.get()) != OCSP_RESPONSE_STATUS_SUCCESSFUL) {
            error = "the responder's answer is not a successful OCSP response";
            der.clear();
        }
    } catch (const std::exception& e) {
        error = e.what();
    }
    std::lock_guard lk(mu_);
    ++fetches_;
    if (der.empty()) {
        ++failures_;
        last_error_ = error;
        log::warn("sandbox_staple_fetch_failed", {{"url", url_}, {"error", error}});
    } else {
        der_ = std::move(der);
        last_error_.clear();
    }
    ++generation_;
    cv_.notify_all();
}

void Stapler::loop() {
    for (;;) {
        {
            std::unique_lock lk(mu_);
            cv_.wait_for(lk, period_, [&] { return wake_ || stop_; });
            if (stop_) return;
            wake_ = false;
        }
        if (enabled_) fetch_once();
    }
}

nlohmann::json Stapler::to_json() const {
    std::lock_guard lk(mu_);
    return {{"enabled", enabled_.load()}, {"url", url_},           {"have_response", !der_.empty()},
            {"fetches", fetches_},        {"failures", failures_}, {"sent", sent_},
            {"last_error", last_error_}};
}

}  // namespace mtls::sandbox
