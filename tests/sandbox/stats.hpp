// Counters the tests read through GET /sandbox/stats, and a log of recent requests
// (GET /sandbox/requests) recording which certificate each token was bound to and which
// certificate the connection had.
#pragma once

#include <nlohmann/json.hpp>

#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>

namespace mtls::sandbox {

using Counter = std::atomic<std::uint64_t>;

struct ServiceCounters {
    Counter connections{0};
    Counter full_handshakes{0};
    Counter resumed_handshakes{0};
    Counter handshake_failures{0};
    Counter requests{0};
    nlohmann::json to_json() const;
    void reset();
};

struct RequestRecord {
    std::string service;  // "est", "as", "api"
    std::string method;
    std::string path;
    int status = 0;
    bool resumed = false;
    std::string conn_cert_x5t;  // "" when the connection had no client certificate
    std::string token_cnf_x5t;  // "" when no (valid) token carried a cnf
    std::optional<bool> bound;  // token's cnf == connection cert; nullopt without a token
};

class Stats {
  public:
    ServiceCounters est, as, api;

    Counter token_requests{0};  // every POST to the token endpoint
    Counter tokens_issued{0};
    Counter token_errors{0};
    Counter introspections{0};
    Counter est_requests{0};
    Counter est_enrolls{0};      // certificates issued by simpleenroll
    Counter est_reenrolls{0};    // certificates issued by simplereenroll
    Counter est_retry_later{0};  // 202 answers
    Counter est_rejected{0};     // 4xx/5xx answers to (re)enroll
    Counter api_requests{0};
    Counter bound_ok{0};        // token cnf matched the connection's certificate
    Counter bound_mismatch{0};  // token cnf did not match
    Counter token_missing{0};
    Counter token_invalid{0};
    Counter echo_requests{0};
    Counter unsolicited_sent{0};  // extra bytes written after an answer (unsolicited.hpp)

    ServiceCounters& service(const std::string& name);
    void record(RequestRecord r);
    // A partner API request arrived (its head read, before it is handled) over a connection
    // with this client certificate (x5t#S256, "" without one): counted per certificate, all
    // of them (GET /sandbox/stats "api_requests_by_cert"), so a test can tell whether any
    // request came with a given certificate after some moment.
    void count_api_cert(const std::string& x5t);
    nlohmann::json to_json() const;
    nlohmann::json records_json() const;
    void reset();

  private:
    mutable std::mutex mu_;
    std::deque<RequestRecord> records_;
    std::map<std::string, std::uint64_t> api_by_cert_;
};

}  // namespace mtls::sandbox
