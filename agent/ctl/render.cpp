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
        const auto& subj = id.value("subject", nlohmann::json::object());
        o << "  subject:    CN=" << str(subj, "cn") << ", O=" << str(subj, "o")
          << ", OU=" << str(subj, "ou") << "\n"
          << "  serial:     " << str(id, "serial") << "\n"
          << "  issuer:     " << str(id, "issuer") << "\n"
          << "  valid:      " << str(id, "not_before") << " .. " << str(id, "not_after") << "\n"
          << "  key:        " << str(id, "key_type") << " id " << str(id, "key_id") << " on "
          << str(id, "token_uri") << "\n"
          << "  thumbprint: " << str(id, "thumbprint_sha256") << " (x5t#S256)\n";
    } else {
        o << "  none (enrollment pending)\n";
    }
    const auto& ren = s.value("renewal", nlohmann::json());
    if (ren.is_object())
        o << "  next renewal: " << str(ren, "next_at") << "  last: " << str(ren, "last_result")
          << "\n";
    if (const auto& ex = s.value("export", nlohmann::json()); ex.is_object())
        o << render_export(ex);
    const auto& dev = s.value("token_device", nlohmann::json());
    if (dev.is_object())
        o << "  pkcs11 token: present=" << str(dev, "present")
          << " logged_in=" << str(dev, "logged_in") << "\n";
    if (s.contains("tokens") && s["tokens"].is_array() && !s["tokens"].empty()) {
        o << "\naccess tokens\n";
        for (const auto& t : s["tokens"])
            o << "  " << str(t, "profile") << ": valid until " << str(t, "valid_until")
              << (str(t, "last_error", "").empty() ? "" : "  last error: " + str(t, "last_error"))
              << "\n";
    }
    if (s.contains("routes") && s["routes"].is_array() && !s["routes"].empty()) {
        o << "\nroutes\n";
        for (const auto& r : s["routes"])
            o << "  " << str(r, "name") << ": " << str(r, "requests", "0") << " requests, "
              << str(r, "errors", "0") << " errors, pool " << str(r, "pool_size", "0") << "\n";
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
