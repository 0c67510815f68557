// [export] and [renewal] on_renew against the real agent (sandbox EST/AS/partner, SoftHSM2):
// the files follow every enrollment, renewal and rotation, atomically, with their mode and
// owner; the command runs once per new certificate with the documented environment; a
// failing or hanging command is reported and retried at the next renewal while the agent
// keeps serving; a restart with current files runs nothing, missing files are rewritten.
#include "common/ossl.hpp"
#include "tests/support/agent_world.hpp"
#include "tests/support/poll.hpp"
#include "tests/support/temp_dir.hpp"

#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

namespace {

using namespace mtls::test;
using namespace std::chrono_literals;
using nlohmann::json;
namespace fs = std::filesystem;

std::string slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// How many certificates a PEM text holds, each parsed by OpenSSL; -1 when any part of it
// does not parse or something follows the last one (a partial file).
int pem_count(const std::string& pem) {
    if (pem.empty()) return -1;
    mtls::ossl::Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    int n = 0;
    while (BIO_pending(bio.get()) > 0) {
        mtls::ossl::X509Ptr c(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
        if (!c) {
            ERR_clear_error();
            return -1;
        }
        ++n;
    }
    return n;
}

// The runs the hook recorded: one block per run, "KEY=value" lines of its args and env.
std::vector<std::map<std::string, std::string>> hook_runs(const fs::path& log) {
    std::vector<std::map<std::string, std::string>> runs;
    std::istringstream in(slurp(log));
    std::string line;
    while (std::getline(in, line)) {
        if (line == "run") {
            runs.emplace_back();
        } else if (!runs.empty()) {
            auto eq = line.find('=');
            if (eq != std::string::npos) runs.back()[line.substr(0, eq)] = line.substr(eq + 1);
        }
    }
    return runs;
}

class ExportTest : public ::testing::Test {
  protected:
    ExportTest() {
        fs::create_directory(files_dir_);
        ::chmod(files_dir_.c_str(), 0755);
        // Records its args and environment; fails while <out>/fail exists, hangs (marking
        // <out>/hanging) while <out>/hang exists, waits (marking <out>/blocked) while
        // <out>/block exists.
        out_.write("hook.sh",
                   "#!/bin/sh\n"
                   "{ echo run; echo \"ARGS=$*\"; env; echo \"FILE_SERIAL=$(openssl x509 -in "
                   "\"$MTLS_AGENT_CERT\" -noout -serial)\"; } >> " +
                       (out_ / "hook.log").string() +
                       "\n"
                       "echo \"hook saw $MTLS_AGENT_SERIAL\"\n"
                       "echo \"to stderr\" >&2\n"
                       "if [ -e " +
                       (out_ / "hang").string() + " ]; then touch " + (out_ / "hanging").string() +
                       "; sleep 60; fi\n"
                       "if [ -e " +
                       (out_ / "block").string() + " ]; then touch " + (out_ / "blocked").string() +
                       "; while [ -e " + (out_ / "block").string() +
                       " ]; do sleep 0.05; done; fi\n"
                       "if [ -e " +
                       (out_ / "fail").string() +
                       " ]; then exit 3; fi\n"
                       "exit 0\n",
                   0755);
    }

    AgentSetup setup(const std::string& timeout = "5s", const std::string& mode = "0640") const {
        AgentSetup s;
        s.renewal = "on_renew = [" + q(out_ / "hook.sh") + ", \"reload\", \"my app\"]\n" +
                    "on_renew_timeout = \"" + timeout + "\"\n";
        s.extra = "[export]\ncert = " + q(file("cert")) + "\nchain = " + q(file("chain")) +
                  "\nfullchain = " + q(file("fullchain")) + "\nca = " + q(file("ca")) +
                  "\nmode = \"" + mode + "\"\n";
        // Only root may give files away.
        if (::geteuid() == 0) s.extra += "owner = \"65534\"\ngroup = \"65534\"\n";
        return s;
    }
    static std::string q(const fs::path& p) { return "\"" + p.string() + "\""; }
    fs::path file(const std::string& name) const { return files_dir_ / (name + ".pem"); }

    // The status once the exporter has handled the certificate with `serial` and the hook has
    // run `runs` times in this process.
    static json wait_exported(AgentWorld& w, const std::string& serial, int runs) {
        return w.agent->wait_status(
            [&](const json& s) {
                const auto& ex = s["export"];
                return ex.is_object() && ex["serial"].is_string() &&
                       norm_serial(ex["serial"]) == norm_serial(serial) &&
                       ex["on_renew"].is_object() && ex["on_renew"]["runs"] == runs;
            },
            30s, "export of " + serial + " with " + std::to_string(runs) + " hook run(s)");
    }

    void expect_files_hold(AgentWorld& w, const std::string& serial, unsigned mode) const {
        const auto cert = slurp(file("cert")), chain = slurp(file("chain")),
                   full = slurp(file("fullchain")), ca = slurp(file("ca"));
        EXPECT_EQ(pem_count(cert), 1);
        EXPECT_EQ(leaf_serial(cert), norm_serial(serial));
        EXPECT_GE(pem_count(chain), 1) << "the sandbox CA issues through an intermediate";
        EXPECT_EQ(full, cert + chain);
        EXPECT_EQ(ca, w.state().est_ca_pem);
        EXPECT_NE(full.find("CERTIFICATE"), std::string::npos);
        for (const char* name : {"cert", "chain", "fullchain", "ca"}) {
            struct stat st {};
            ASSERT_EQ(::stat(file(name).c_str(), &st), 0) << name;
            EXPECT_EQ(st.st_mode & 07777, mode) << name;
            if (::geteuid() == 0) {
                EXPECT_EQ(st.st_uid, 65534u) << name;
                EXPECT_EQ(st.st_gid, 65534u) << name;
            }
            EXPECT_EQ(slurp(file(name)).find("PRIVATE KEY"), std::string::npos) << name;
        }
        // No temporary file left behind.
        for (const auto& e : fs::directory_iterator(files_dir_))
            EXPECT_EQ(e.path().filename().string().rfind(".", 0), std::string::npos) << e.path();
    }

    TempDir out_{"export-out"};
    fs::path files_dir_ = out_ / "files";
};

TEST_F(ExportTest, FilesAndHookFollowEnrollmentRenewalAndRotationAtomically) {
    AgentWorld w("export", {}, setup());
    w.agent->start();
    auto st = w.agent->wait_healthy(60s);
    std::string serial = st["identity"]["serial"];
    // First enrollment: the files are written, the command runs once.
    st = wait_exported(w, serial, 1);
    expect_files_hold(w, serial, 0640);
    EXPECT_EQ(st["export"]["on_renew"]["last_result"], "ok") << st["export"];
    EXPECT_EQ(st["export"]["on_renew"]["last_message"], "exit status 0");
    EXPECT_EQ(st["export"]["last_error"], "");
    EXPECT_EQ(st["export"]["files"]["fullchain"], file("fullchain").string());
    EXPECT_EQ(st["state"], "healthy");

    auto runs = hook_runs(out_ / "hook.log");
    ASSERT_EQ(runs.size(), 1u);
    auto& env = runs[0];
    EXPECT_EQ(env["ARGS"], "reload my app");
    EXPECT_EQ(env["MTLS_AGENT_CERT"], file("cert").string());
    EXPECT_EQ(env["MTLS_AGENT_CHAIN"], file("chain").string());
    EXPECT_EQ(env["MTLS_AGENT_FULLCHAIN"], file("fullchain").string());
    EXPECT_EQ(env["MTLS_AGENT_CA"], file("ca").string());
    EXPECT_EQ(norm_serial(env["MTLS_AGENT_SERIAL"]), norm_serial(serial));
    EXPECT_EQ(env["MTLS_AGENT_NOT_AFTER"], st["identity"]["not_after"]);
    EXPECT_EQ(norm_serial(env["FILE_SERIAL"].substr(env["FILE_SERIAL"].find('=') + 1)),
              norm_serial(serial))
        << "the files are in place before the command runs";
    EXPECT_EQ(env["PATH"], "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    // Nothing of the agent's own environment (the test sets SOFTHSM2_CONF for it).
    EXPECT_EQ(env.count("SOFTHSM2_CONF"), 0u);
    EXPECT_EQ(env.count("HOME"), 0u);
    // The command's output is in the log, as events.
    EXPECT_NE(w.agent->log().find("renewal.hook_output"), std::string::npos);
    EXPECT_NE(w.agent->log().find("to stderr"), std::string::npos);

    // A reader polling the files through several renewals never sees a partial file or
    // another mode.
    std::atomic<bool> stop{false};
    std::atomic<int> reads{0};
    std::vector<std::string> bad;
    std::set<std::string> seen;
    std::thread reader([&] {
        while (!stop) {
            for (const char* name : {"cert", "fullchain"}) {
                const auto text = slurp(file(name));
                struct stat s {};
                const bool stat_ok = ::stat(file(name).c_str(), &s) == 0;
                const int n = pem_count(text);
                if (n < 1 || (std::string(name) == "cert" && n != 1) || !stat_ok ||
                    (s.st_mode & 07777) != 0640)
                    bad.push_back(std::string(name) + ": " + std::to_string(n) + " cert(s), " +
                                  std::to_string(text.size()) + " bytes");
                else
                    seen.insert(leaf_serial(text));
                ++reads;
            }
        }
    });
    std::vector<std::string> serials{serial};
    for (int i = 0; i < 4; ++i) {
        auto r = w.agent->ctl({i == 2 ? "rotate" : "renew", "--wait"});
        ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
        auto now = w.agent->status().value_or(json());
        ASSERT_TRUE(now["identity"].is_object());
        serial = now["identity"]["serial"];
        EXPECT_EQ(std::count(serials.begin(), serials.end(), serial), 0) << "a new certificate";
        serials.push_back(serial);
        // Exactly one more run per new certificate.
        st = wait_exported(w, serial, 2 + i);
        EXPECT_EQ(hook_runs(out_ / "hook.log").size(), static_cast<std::size_t>(2 + i));
        EXPECT_EQ(norm_serial(hook_runs(out_ / "hook.log").back()["MTLS_AGENT_SERIAL"]),
                  norm_serial(serial));
        expect_files_hold(w, serial, 0640);
    }
    stop = true;
    reader.join();
    EXPECT_TRUE(bad.empty()) << bad.size() << " bad reads, first: " << bad.front();
    EXPECT_GT(reads.load(), 20);
    EXPECT_GE(seen.size(), 3u) << "the reader saw the files change";

    auto m = w.agent->ctl({"metrics"});
    EXPECT_NE(m.out.find("mtls_agent_renewal_hook_runs_total 5\n"), std::string::npos) << m.out;
    EXPECT_NE(m.out.find("mtls_agent_renewal_hook_failures_total 0\n"), std::string::npos);
    // 4 files for the first certificate, then cert and fullchain for each of the 4 others (the
    // chain and the CA certificates did not change: those files are left as they are).
    EXPECT_NE(m.out.find("mtls_agent_export_writes_total 12\n"), std::string::npos) << m.out;
    if (fs::exists("/usr/bin/promtool")) {
        auto lint = run_command({"/usr/bin/promtool", "check", "metrics"}, m.out);
        EXPECT_EQ(lint.exit_code, 0) << lint.out << lint.err;
    }
    auto human = w.agent->ctl({"status"});
    EXPECT_NE(human.out.find("export:     4 file(s) hold serial " + serial), std::string::npos)
        << human.out;
}

TEST_F(ExportTest, FailingAndHangingCommandsAreReportedRetriedAndDoNotStopTheAgent) {
    out_.write("fail", "");
    AgentWorld w("export-fail", {}, setup("4s"));
    w.agent->start();
    auto st = w.agent->wait_healthy(60s);
    std::string serial = st["identity"]["serial"];
    st = wait_exported(w, serial, 1);
    const auto& hook = st["export"]["on_renew"];
    EXPECT_EQ(hook["last_result"], "failed") << st["export"];
    EXPECT_EQ(hook["last_message"], "exit status 3");
    EXPECT_EQ(hook["failures"], 1);
    EXPECT_EQ(st["state"], "healthy") << "a failing command is reported, not a health problem";
    expect_files_hold(w, serial, 0640);
    EXPECT_TRUE(w.call()["token"]["bound_to_this_certificate"].get<bool>());
    EXPECT_NE(w.agent->log().find("renewal.hook_failed"), std::string::npos);
    auto human = w.agent->ctl({"status"});
    EXPECT_NE(human.out.find("on_renew: failed at "), std::string::npos) << human.out;
    EXPECT_NE(human.out.find("(exit status 3)"), std::string::npos) << human.out;

    // A command that hangs is killed after on_renew_timeout, reported, and the agent serves.
    fs::remove(out_ / "fail");
    out_.write("hang", "");
    auto r = w.agent->ctl({"renew", "--wait"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    ASSERT_TRUE(poll_until([&] { return fs::exists(out_ / "hanging"); }, 30s));
    EXPECT_TRUE(w.call()["token"]["bound_to_this_certificate"].get<bool>());
    st = w.agent->wait_status([](const json& s) { return s["export"]["on_renew"]["runs"] == 2; },
                              30s, "the hanging command killed");
    EXPECT_EQ(st["export"]["on_renew"]["last_result"], "timed_out") << st["export"];
    EXPECT_EQ(st["export"]["on_renew"]["last_message"],
              "ran longer than on_renew_timeout (4s) and was killed (SIGTERM)");
    EXPECT_EQ(st["export"]["on_renew"]["failures"], 2);
    EXPECT_EQ(st["state"], "healthy");
    fs::remove(out_ / "hang");

    // A slow command (waiting for us; the timeout reloaded to 60s) delays neither the proxy
    // nor a renewal; the certificate renewed meanwhile is exported and the command run again
    // when it ends.
    auto text = w.agent->config_text();
    text.replace(text.find("on_renew_timeout = \"4s\""), 24, "on_renew_timeout = \"60s\"");
    w.agent->write_config(text);
    ASSERT_EQ(w.agent->ctl({"reload"}).exit_code, 0);
    out_.write("block", "");
    r = w.agent->ctl({"renew", "--wait"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    ASSERT_TRUE(poll_until([&] { return fs::exists(out_ / "blocked"); }, 30s));
    EXPECT_TRUE(w.call()["token"]["bound_to_this_certificate"].get<bool>());
    auto during = w.agent->ctl({"renew", "--wait"});
    ASSERT_EQ(during.exit_code, 0) << during.err;
    auto now = w.agent->status().value_or(json());
    EXPECT_EQ(now["export"]["on_renew"]["runs"], 2) << "the command is still running";
    EXPECT_EQ(now["state"], "healthy");
    serial = now["identity"]["serial"];
    EXPECT_NE(leaf_serial(slurp(file("cert"))), norm_serial(serial)) << "not exported yet";
    fs::remove(out_ / "block");
    st = wait_exported(w, serial, 4);
    EXPECT_EQ(st["export"]["on_renew"]["last_result"], "ok") << st["export"];
    EXPECT_EQ(st["export"]["on_renew"]["failures"], 2);
    expect_files_hold(w, serial, 0640);
    auto m = w.agent->ctl({"metrics"});
    EXPECT_NE(m.out.find("mtls_agent_renewal_hook_failures_total 2\n"), std::string::npos) << m.out;
}

TEST_F(ExportTest, RestartRunsNothingForCurrentFilesAndRewritesMissingOnes) {
    AgentWorld w("export-restart", {}, setup());
    w.agent->start();
    auto st = w.agent->wait_healthy(60s);
    const std::string serial = st["identity"]["serial"];
    wait_exported(w, serial, 1);
    struct stat before {};
    ASSERT_EQ(::stat(file("fullchain").c_str(), &before), 0);

    // Restart with current files: nothing written, nothing run.
    EXPECT_EQ(w.agent->stop(), 0);
    w.agent->start();
    st = wait_exported(w, serial, 0);
    EXPECT_TRUE(st["export"]["last_written_at"].is_null()) << st["export"];
    EXPECT_EQ(st["export"]["on_renew"]["last_result"], "never");
    struct stat after {};
    ASSERT_EQ(::stat(file("fullchain").c_str(), &after), 0);
    EXPECT_EQ(after.st_ino, before.st_ino) << "not rewritten";
    EXPECT_EQ(hook_runs(out_ / "hook.log").size(), 1u);

    // Restart with a missing and a truncated file: both rewritten, the command runs once.
    EXPECT_EQ(w.agent->stop(), 0);
    fs::remove(file("chain"));
    const auto full = slurp(file("fullchain"));
    std::ofstream(file("fullchain"), std::ios::trunc) << full.substr(0, full.size() / 2);
    w.agent->start();
    st = wait_exported(w, serial, 1);
    expect_files_hold(w, serial, 0640);
    EXPECT_EQ(hook_runs(out_ / "hook.log").size(), 2u);

    // Reload with another mode: the files get it, and the command runs.
    auto text = w.agent->config_text();
    text.replace(text.find("mode = \"0640\""), 13, "mode = \"0644\"");
    w.agent->write_config(text);
    auto r = w.agent->ctl({"reload"});
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_NE(r.out.find("[export]"), std::string::npos) << r.out;
    st = wait_exported(w, serial, 2);
    expect_files_hold(w, serial, 0644);
}

}  // namespace

namespace {

TEST_F(ExportTest, WithoutFilesTheCommandRunsForEachNewCertificateOnly) {
    AgentSetup s = setup();
    s.extra.clear();  // no [export]: only on_renew
    AgentWorld w("export-hook-only", {}, s);
    w.agent->start();
    auto st = w.agent->wait_healthy(60s);
    std::string serial = st["identity"]["serial"];
    // The certificate the agent starts with is not a new one for the command.
    st = wait_exported(w, serial, 0);
    EXPECT_EQ(st["export"]["files"], json::object());
    EXPECT_FALSE(fs::exists(out_ / "hook.log"));

    auto r = w.agent->ctl({"renew", "--wait"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    serial = w.agent->status().value_or(json())["identity"]["serial"];
    wait_exported(w, serial, 1);
    auto runs = hook_runs(out_ / "hook.log");
    ASSERT_EQ(runs.size(), 1u);
    EXPECT_EQ(norm_serial(runs[0]["MTLS_AGENT_SERIAL"]), norm_serial(serial));
    EXPECT_EQ(runs[0].count("MTLS_AGENT_CERT"), 0u) << "no file, no variable";
    EXPECT_EQ(runs[0].count("MTLS_AGENT_FULLCHAIN"), 0u);
}

}  // namespace
