#include "agent/ctl/render.hpp"

#include <sstream>

namespace mtls::ctl {
namespace {

std::string str(const nlohmann::json& j, const char* key, const char* fallback = "-") {
    if (!j.is_object()) return fallback;
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return fallback;
    if (it->is_string()) return it->get<std::string>();
    return it->dump();
}

std::string join(const nlohmann::json& list) {
    std::string out;
    for (const auto& v : list) {
        if (!out.empty()) out += ", ";
        out += v.is_string() ? v.get<std::string>() : v.dump();
    }
    return out;
}

// "  export: 3 file(s) hold serial …, written …; on_renew: ok at … (exit status 0)"; "" when
// nothing is exported.
std::string render_export(const nlohmann::json& ex) {
    const auto& files = ex.value("files", nlohmann::json::object());
    const auto& hook = ex.value("on_renew", nlohmann::json());
    if ((!files.is_object() || files.empty()) && !hook.is_object()) return {};
    std::ostringstream o;
    o << "  export:     ";
    if (files.is_object() && !files.empty())
        o << files.size() << " file(s) hold serial " << str(ex, "serial") << ", written "
          << str(ex, "last_written_at", "never") << "; ";
    if (hook.is_object())
        o << "on_renew: " << str(hook, "last_result") << " at " << str(hook, "last_run_at")
          << (str(hook, "last_message", "").empty() ? "" : " (" + str(hook, "last_message") + ")");
    o << "\n";
    if (!str(ex, "last_error", "").empty())
        o << "  export error: " << str(ex, "last_error") << "\n";
    return o.str();
}

}  // namespace

int status_exit_code(const nlohmann::json& s) {
    auto state = str(s, "state", "failing");
    if (state == "healthy") return 0;
    if (state == "degraded") return 1;
    return 2;
}

std::string render_status(const nlohmann::json& s) {
    std::ostringstream o;
    o << "state:        " << str(s, "state") << "\n";
    if (s.contains("reasons") && s["reasons"].is_array())
        for (const auto& r : s["reasons"])
            o << "  - " << (r.is_string() ? r.get<std::string>() : r.dump()) << "\n";
    if (s.contains("version")) o << "version:      " << str(s, "version") << "\n";
    const auto& id = s.value("identity", nlohmann::json());
    o << "\nidentity\n";
    if (id.is_object()) {
        o << "  subject:    " << str(id, "subject") << "\n";
        if (id.contains("sans") && id["sans"].is_array() && !id["sans"].empty())
            o << "  SANs:       " << join(id["sans"]) << "\n";
        if (id.contains("eku") && id["eku"].is_array() && !id["eku"].empty())
            o << "  EKU:        " << join(id["eku"]) << "\n";
        o << "  serial:     " << str(id, "serial") << "\n"
          << "  issuer:     " << str(id, "issuer") << "\n";
        if (id.contains("chain") && id["chain"].is_array())
            for (const auto& c : id["chain"])
                o << "  chain:      " << (c.is_string() ? c.get<std::string>() : c.dump()) << "\n";
        o << "  valid:      " << str(id, "not_before") << " .. " << str(id, "not_after") << " ("
          << str(id, "time_remaining") << " left)\n"
          << "  key:        " << str(id, "key_type") << " " << str(id, "key_uri") << "\n"
          << "  thumbprint: " << str(id, "thumbprint_sha256") << " (x5t#S256)\n";
    } else {
        o << "  none (enrollment pending)\n";
    }
    const auto& est = s.value("est", nlohmann::json());
    if (est.is_object())
        o << "  EST server: " << str(est, "server")
          << (str(est, "ca_label", "").empty() ? "" : " (CA label " + str(est, "ca_label") + ")")
          << "\n";
    const auto& ren = s.value("renewal", nlohmann::json());
    if (ren.is_object())
        o << "  next renewal: " << str(ren, "next_at") << "  last: " << str(ren, "last_result")
          << (ren.value("last_at", nlohmann::json()).is_string() ? " at " + str(ren, "last_at")
                                                                 : std::string())
          << "\n";
    if (const auto& own = s.value("own_revocation", nlohmann::json()); own.is_object())
        o << "  revocation: " << str(own, "result")
          << (own.value("last_check_at", nlohmann::json()).is_string()
                  ? " at " + str(own, "last_check_at") + ", next " + str(own, "next_check_at")
                  : std::string())
          << " (" << str(own, "mode") << ")\n";
    if (ren.is_object() && ren.value("last_compromise", nlohmann::json()).is_object()) {
        const auto& c = ren["last_compromise"];
        o << "  last compromise: " << str(c, "at") << " (" << str(c, "trigger") << ": "
          << str(c, "reason") << ")\n";
    }
    if (const auto& ex = s.value("export", nlohmann::json()); ex.is_object())
        o << render_export(ex);
    const auto& dev = s.value("token_device", nlohmann::json());
    if (dev.is_object())
        o << "  pkcs11 token: present=" << str(dev, "present")
          << " logged_in=" << str(dev, "logged_in") << "\n";
    if (s.contains("tokens") && s["tokens"].is_array() && !s["tokens"].empty()) {
        o << "\naccess tokens\n";
        for (const auto& t : s["tokens"]) {
            o << "  " << str(t, "profile") << ": " << str(t, "state");
            if (t.value("valid_until", nlohmann::json()).is_string())
                o << ", valid until " << str(t, "valid_until");
            if (!str(t, "last_error", "").empty()) o << "  last error: " << str(t, "last_error");
            o << "\n";
        }
    }
    if (const auto& px = s.value("proxy", nlohmann::json()); px.is_object()) {
        o << "\nproxy:        " << str(px, "workers") << " worker(s), "
          << str(px, "connections_open", "0") << " app connection(s) open";
        if (px.contains("per_worker") && px["per_worker"].is_array() &&
            px["per_worker"].size() > 1) {
            o << " (";
            const char* sep = "";
            for (const auto& w : px["per_worker"]) {
                o << sep << "worker " << str(w, "worker") << ": " << str(w, "open", "0");
                sep = ", ";
            }
            o << ")";
        }
        o << "\n";
    }
    if (s.contains("routes") && s["routes"].is_array() && !s["routes"].empty()) {
        o << "\nroutes\n";
        for (const auto& r : s["routes"]) {
            const auto& rs = r.value("responses", nlohmann::json::object());
            o << "  " << str(r, "name") << " (" << str(r, "state")
              << "): " << str(r, "requests", "0") << " requests = partner 2xx "
              << str(rs, "2xx", "0") << " 3xx " << str(rs, "3xx", "0") << " 4xx "
              << str(rs, "4xx", "0") << " 5xx " << str(rs, "5xx", "0") << " + proxy errors "
              << str(r, "proxy_errors", "0") << " + unanswered " << str(r, "no_response", "0")
              << "; pool " << str(r, "pool_size", "0") << "\n";
            const auto& last = r.value("last_error", nlohmann::json());
            if (last.is_object())
                o << "    last error: " << str(last, "error") << " (status " << str(last, "status")
                  << ") at " << str(last, "at") << ", " << str(r, "consecutive_failures", "0")
                  << " failure(s) in a row\n";
            // The last revocation check of the partner's chain (status .revocation.<route>).
            const auto& rev = s.value("revocation", nlohmann::json::object());
            if (rev.is_object() && rev.contains(str(r, "name")))
                o << "    revocation (" << str(rev[str(r, "name")], "policy")
                  << "): " << str(rev[str(r, "name")], "detail") << " at "
                  << str(rev[str(r, "name")], "checked_at") << "\n";
        }
    }
    return o.str();
}

std::string render_steps(const nlohmann::json& r) {
    std::ostringstream o;
    if (r.contains("steps") && r["steps"].is_array()) {
        for (const auto& st : r["steps"])
            o << "  [" << str(st, "status") << "] " << str(st, "step")
              << (str(st, "detail", "").empty() ? "" : ": " + str(st, "detail")) << "\n";
    }
    if (r.contains("message")) o << str(r, "message") << "\n";
    if (r.contains("errors") && r["errors"].is_array())
        for (const auto& e : r["errors"])
            o << "  " << (e.is_string() ? e.get<std::string>() : e.dump()) << "\n";
    auto s = o.str();
    return s.empty() ? "ok\n" : s;
}

}  // namespace mtls::ctl
