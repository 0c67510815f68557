#include "tests/support/agent_process.hpp"

#include "common/atomic_file.hpp"
#include "tests/support/cryptoki.hpp"
#include "tests/support/poll.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <csignal>

#include <cstdio>
#include <fstream>
#include <memory>
#include <random>
#include <stdexcept>
#include <string_view>
#include <system_error>
#include <thread>

namespace mtls::test {

namespace {

using Clock = std::chrono::steady_clock;

std::string toml_str(const std::string& s) {
    return nlohmann::json(s).dump();  // a TOML basic string is JSON-compatible here
}

}  // namespace

std::filesystem::path AgentProcess::agent_binary() {
    return std::filesystem::path(MTLS_BINARY_DIR) / "agent" / "mtls-agent";
}

std::filesystem::path AgentProcess::ctl_binary() {
    return std::filesystem::path(MTLS_BINARY_DIR) / "agent" / "mtls-agentctl";
}

std::vector<std::string> AgentProcess::sandbox_args(const std::filesystem::path& dir) {
    const auto file = dir / "est-basic";
    if (!std::filesystem::exists(file))
        files::write_atomic(file, "test-agent:est-secret-1\n", 0600);
    return {"--est-credentials", file.string()};
}

AgentProcess::AgentProcess(std::filesystem::path dir, const TempToken& token,
                           const SandboxProcess& sandbox, AgentSetup setup)
    : dir_(std::move(dir)), token_(token), setup_(std::move(setup)), port_(free_loopback_port()) {
    sandbox_args(dir_);
    write_config(render(sandbox));
}

AgentProcess::~AgentProcess() {
    // A clean stop exits 0: anything else (a leak report under ASan, a crash on the way
    // out) fails the test that ran the agent. Sanitizer reports fail it in any case.
    if (child_ && child_->running()) {
        const int rc = child_->stop(std::chrono::seconds(10));
        if (rc != 0)
            ADD_FAILURE() << "mtls-agent exited with " << rc << " on SIGTERM; log:\n" << log();
    }
    const auto text = log();
    for (const char* bad : {"Sanitizer", "runtime error:"})
        if (text.find(bad) != std::string::npos)
            ADD_FAILURE() << "the agent's log has a sanitizer report:\n" << text;
}

std::string AgentProcess::render(const SandboxProcess& sandbox) const {
    const auto ca = toml_str(sandbox.ca_bundle());
    std::string est = sandbox.est_url();  // the info names the EST path; the config wants the base
    if (auto at = est.find("/.well-known/est"); at != std::string::npos) est.resize(at);
    std::string t;
    t += "[agent]\nstate_dir = " + toml_str((dir_ / "state").string()) + "\n\n";
    t += "[pkcs11]\nmodule = " + toml_str(token_.module) + "\ntoken = " + toml_str(token_.uri) +
         "\n" + setup_.pin.value_or("pin_file = " + toml_str(token_.pin_file)) + "\n\n";
    t += "[key]\ntype = " + toml_str(setup_.key_type) + "\n" + setup_.key + "\n";
    const auto creds = toml_str((dir_ / "est-basic").string());
    std::string auth = setup_.est_auth.value_or("basic_credentials = {credentials}");
    for (auto at = auth.find("{credentials}"); at != std::string::npos;
         at = auth.find("{credentials}", at + creds.size()))
        auth.replace(at, 13, creds);
    t += "[est]\nserver = " + toml_str(est) + "\ntrust_anchor = " + ca + "\n" + auth +
         "\ncommon_name = \"agent-under-test.example\"\norganization = \"Example Corp\"\n"
         "organizational_unit = \"integration\"\ndns_names = [\"agent-under-test.example\"]\n" +
         setup_.est + "\n";
    t += "[renewal]\n" + setup_.renewal + "\n";
    t += "[oauth]\nissuer = " + toml_str(sandbox.as_issuer()) + "\nca_file = " + ca + "\n\n";
    t += "[[oauth.profiles]]\nname = \"partner\"\nclient_id = \"test-agent\"\n" +
         setup_.oauth_profile + "\n";
    t += "[[routes]]\nname = \"partner\"\npath_prefix = \"/partner/\"\nupstream = " +
         toml_str(sandbox.api_url() + "/") + "\nca_file = " + ca + "\n";
    if (setup_.use_token) t += "token_profile = \"partner\"\n";
    t += setup_.route;
    t += "\n[listener]\naddresses = [\"127.0.0.1:" + std::to_string(port_) + "\"]\n" +
         setup_.listener + "\n";
    t += "[admin]\nsocket = " + toml_str(socket_path().string()) + "\n" + setup_.admin + "\n";
    t += setup_.extra;
    return t;
}

void AgentProcess::write_config(const std::string& text) {
    config_ = text;
    files::write_atomic(config_path(), text, 0600);
}

void AgentProcess::start(const std::map<std::string, std::string>& env) {
    if (child_ && child_->running())
        throw std::logic_error("AgentProcess::start: the agent is already running");
    std::map<std::string, std::string> e = env;
    for (const auto& [k, v] : token_.env) e.emplace(k, v);
    ++starts_;
    std::vector<std::string> argv = setup_.launcher;
    const auto binary = setup_.binary.empty() ? agent_binary() : setup_.binary;
    for (auto a : {binary.string(), std::string("--config"), config_path().string()})
        argv.push_back(a);
    child_ = std::make_unique<ChildProcess>(argv, dir_ / "agent.log", e);
}

CommandResult AgentProcess::ctl(const std::vector<std::string>& args,
                                std::chrono::milliseconds timeout) const {
    std::vector<std::string> argv{ctl_binary().string(), "--socket", socket_path().string()};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_command(argv, "", timeout);
}

std::optional<nlohmann::json> AgentProcess::status() const {
    auto r = ctl({"status", "--json"}, std::chrono::seconds(10));
    if (r.exit_code == 3 || r.exit_code == 4 || r.exit_code == 64) return std::nullopt;
    auto j = nlohmann::json::parse(r.out, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return std::nullopt;
    return j;
}

nlohmann::json AgentProcess::wait_for(const std::function<bool(const nlohmann::json&)>& pred,
                                      std::chrono::milliseconds deadline, const std::string& what) {
    std::string last = "(agent not reachable)";
    std::optional<nlohmann::json> found;
    bool exited = false;
    poll_until(
        [&] {
            if (!child_ || !child_->running()) return exited = true;
            if (auto s = status()) {
                if (pred(*s))
                    found = std::move(s);
                else
                    last = s->dump();
            }
            return found.has_value();
        },
        deadline, std::chrono::milliseconds(50));  // each check runs mtls-agentctl
    if (found) return *found;
    if (exited)
        throw std::runtime_error("the agent exited while waiting for " + what + "; log:\n" + log());
    throw std::runtime_error("timed out waiting for " + what + "; last status: " + last +
                             "\nlog:\n" + log());
}

nlohmann::json AgentProcess::wait_healthy(std::chrono::milliseconds deadline) {
    return wait_for([](const nlohmann::json& s) { return s.value("state", "") == "healthy"; },
                    deadline, "a healthy agent");
}

bool AgentProcess::running() {
    return child_ && child_->running();
}

std::optional<int> AgentProcess::wait_exit(std::chrono::milliseconds timeout) {
    if (!child_) return std::nullopt;
    return child_->wait_exit(timeout);
}

int AgentProcess::kill9() {
    if (!child_) return -1;
    if (child_->running()) ::kill(child_->pid(), SIGKILL);
    auto rc = child_->wait_exit(std::chrono::seconds(10));
    return rc ? *rc : -1;
}

int AgentProcess::stop() {
    return child_ ? child_->stop(std::chrono::seconds(10)) : -1;
}

std::string AgentProcess::log() const {
    return child_ ? child_->log() : std::string();
}

std::string AgentProcess::events() const {
    const auto all = log();
    std::string out;
    for (std::size_t at = 0; at < all.size();) {
        auto end = all.find('\n', at);
        end = end == std::string::npos ? all.size() : end + 1;
        const std::string_view line(all.data() + at, end - at);
        if (line.find(" event=proxy.request ") == std::string_view::npos) out += line;
        at = end;
    }
    return out;
}

std::string AgentProcess::url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + "/partner/" + path;
}

namespace {

// Binds 127.0.0.1:`port` (0: any) and returns the port bound, or 0 when it is taken.
std::uint16_t try_bind_loopback(std::uint16_t port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw std::system_error(errno, std::generic_category(), "socket");
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    socklen_t len = sizeof a;
    const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
                    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0;
    ::close(fd);
    return ok ? ntohs(a.sin_port) : 0;
}

}  // namespace

std::uint16_t free_loopback_port() {
    // Below the kernel's range for outgoing connections (ip_local_port_range): a port that
    // bind(0) finds free comes from that range, and any connect() on the machine (a test's
    // client, a sandbox, the agent) may take it before the agent binds it ("Address already
    // in use" at the agent's start).
    int low = 32768, high = 60999;
    std::ifstream range("/proc/sys/net/ipv4/ip_local_port_range");
    range >> low >> high;
    constexpr int kFirst = 10000;
    if (low - 1 > kFirst + 1000) {
        static thread_local std::mt19937 rng(std::random_device{}());
        std::uniform_int_distribution<int> pick(kFirst, low - 1);
        for (int tries = 0; tries < 100; ++tries)
            if (auto p = try_bind_loopback(static_cast<std::uint16_t>(pick(rng)))) return p;
    }
    if (auto p = try_bind_loopback(0)) return p;
    throw std::runtime_error("no free TCP port on 127.0.0.1");
}

std::vector<std::string> token_key_ids(const TempToken& token, const std::string& label_prefix) {
    token.use();
    // tpm2-pkcs11 keeps its objects in SQLite: C_Initialize fails (CKR_GENERAL_ERROR, "database
    // is locked") while the agent writes to the store. Retried for a few seconds.
    std::unique_ptr<CryptokiModule> opened;
    const auto until = Clock::now() + std::chrono::seconds(token.is_tpm() ? 10 : 0);
    while (!opened) {
        try {
            opened = std::make_unique<CryptokiModule>(token.module);
        } catch (const std::runtime_error&) {
            if (Clock::now() >= until) throw;
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
    }
    CryptokiModule& m = *opened;
    auto slot = m.find_token(token.label, token.serial);
    if (!slot) throw std::runtime_error("token " + token.label + " not found");
    CK_SESSION_HANDLE s = 0;
    if (m->C_OpenSession(*slot, CKF_SERIAL_SESSION, nullptr, nullptr, &s) != CKR_OK)
        throw std::runtime_error("C_OpenSession failed");
    struct Closer {
        CryptokiModule& m;
        CK_SESSION_HANDLE s;
        ~Closer() { m->C_CloseSession(s); }
    } closer{m, s};
    auto pin = token.read_pin();
    auto rv = m->C_Login(s, CKU_USER, reinterpret_cast<CK_UTF8CHAR_PTR>(pin.data()),
                         static_cast<CK_ULONG>(pin.size()));
    if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN)
        throw std::runtime_error("C_Login failed: " + std::to_string(rv));
    CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
    CK_ATTRIBUTE tmpl[] = {{CKA_CLASS, &cls, sizeof cls}};
    if (m->C_FindObjectsInit(s, tmpl, 1) != CKR_OK)
        throw std::runtime_error("C_FindObjectsInit failed");
    std::vector<CK_OBJECT_HANDLE> objs(256);
    CK_ULONG n = 0;
    m->C_FindObjects(s, objs.data(), static_cast<CK_ULONG>(objs.size()), &n);
    m->C_FindObjectsFinal(s);
    std::vector<std::string> ids;
    for (CK_ULONG i = 0; i < n; ++i) {
        CK_ATTRIBUTE a[] = {{CKA_LABEL, nullptr, 0}, {CKA_ID, nullptr, 0}};
        if (m->C_GetAttributeValue(s, objs[i], a, 2) != CKR_OK) continue;
        std::string label(a[0].ulValueLen, '\0');
        std::vector<unsigned char> id(a[1].ulValueLen);
        a[0].pValue = label.data();
        a[1].pValue = id.data();
        if (m->C_GetAttributeValue(s, objs[i], a, 2) != CKR_OK) continue;
        if (label.rfind(label_prefix, 0) != 0) continue;
        std::string hex;
        char buf[3];
        for (auto b : id) {
            std::snprintf(buf, sizeof buf, "%02x", b);
            hex += buf;
        }
        ids.push_back(hex);
    }
    m->C_Logout(s);
    return ids;
}

}  // namespace mtls::test
