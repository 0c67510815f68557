#include "tests/sandbox/stats.hpp"

namespace mtls::sandbox {

nlohmann::json ServiceCounters::to_json() const {
    return {{"connections", connections.load()},
            {"full_handshakes", full_handshakes.load()},
            {"resumed_handshakes", resumed_handshakes.load()},
            {"handshake_failures", handshake_failures.load()},
            {"requests", requests.load()}};
}

void ServiceCounters::reset() {
    connections = 0;
    full_handshakes = 0;
    resumed_handshakes = 0;
    handshake_failures = 0;
    requests = 0;
}

ServiceCounters& Stats::service(const std::string& name) {
    if (name == "est") return est;
    if (name == "as") return as;
    return api;
}

void Stats::record(RequestRecord r) {
    std::lock_guard lock(mu_);
    records_.push_back(std::move(r));
    while (records_.size() > 1000) records_.pop_front();
}

void Stats::count_api_cert(const std::string& x5t) {
    std::lock_guard lock(mu_);
    ++api_by_cert_[x5t];
}

nlohmann::json Stats::to_json() const {
    auto sum = [&](auto member) {
        return (est.*member).load() + (as.*member).load() + (api.*member).load();
    };
    nlohmann::json by_cert = nlohmann::json::object();
    {
        std::lock_guard lock(mu_);
        for (const auto& [x5t, n] : api_by_cert_) by_cert[x5t] = n;
    }
    return {
        {"api_requests_by_cert", by_cert},
        {"full_handshakes", sum(&ServiceCounters::full_handshakes)},
        {"resumed_handshakes", sum(&ServiceCounters::resumed_handshakes)},
        {"handshake_failures", sum(&ServiceCounters::handshake_failures)},
        {"connections", sum(&ServiceCounters::connections)},
        {"token_requests", token_requests.load()},
        {"tokens_issued", tokens_issued.load()},
        {"token_errors", token_errors.load()},
        {"introspections", introspections.load()},
        {"est_requests", est_requests.load()},
        {"est_enrolls", est_enrolls.load()},
        {"est_reenrolls", est_reenrolls.load()},
        {"est_retry_later", est_retry_later.load()},
        {"est_rejected", est_rejected.load()},
        {"api_requests", api_requests.load()},
        {"bound_ok", bound_ok.load()},
        {"bound_mismatch", bound_mismatch.load()},
        {"token_missing", token_missing.load()},
        {"token_invalid", token_invalid.load()},
        {"echo_requests", echo_requests.load()},
        {"unsolicited_sent", unsolicited_sent.load()},
        {"services", {{"est", est.to_json()}, {"as", as.to_json()}, {"api", api.to_json()}}},
    };
}

nlohmann::json Stats::records_json() const {
    std::lock_guard lock(mu_);
    auto out = nlohmann::json::array();
    for (auto& r : records_) {
        nlohmann::json j = {{"service", r.service},
                            {"method", r.method},
                            {"path", r.path},
                            {"status", r.status},
                            {"resumed", r.resumed},
                            {"conn_cert_x5t", r.conn_cert_x5t},
                            {"token_cnf_x5t", r.token_cnf_x5t}};
        j["bound"] = r.bound ? nlohmann::json(*r.bound) : nlohmann::json(nullptr);
        out.push_back(std::move(j));
    }
    return out;
}

void Stats::reset() {
    est.reset();
    as.reset();
    api.reset();
    for (Counter* c :
         {&token_requests, &tokens_issued, &token_errors, &introspections, &est_requests,
          &est_enrolls, &est_reenrolls, &est_retry_later, &est_rejected, &api_requests, &bound_ok,
          &bound_mismatch, &token_missing, &token_invalid, &echo_requests, &unsolicited_sent})
        *c = 0;
    std::lock_guard lock(mu_);
    records_.clear();
    api_by_cert_.clear();
}

}  // namespace mtls::sandbox
