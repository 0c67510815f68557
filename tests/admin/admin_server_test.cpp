// The admin socket server over a real Unix socket, driven by raw clients and by the real
// mtls-agentctl binary.
#include "agent/admin/server.hpp"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <optional>
#include <thread>

namespace asio = boost::asio;
namespace fs = std::filesystem;
using namespace std::chrono_literals;
using mtls::admin::CommandError;
using mtls::admin::PeerCred;

namespace {

using Clock = std::chrono::steady_clock;

int connect_to(const std::string& path) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

void send_all(int fd, std::string_view s) {
    while (!s.empty()) {
        ssize_t n = ::send(fd, s.data(), s.size(), MSG_NOSIGNAL);
        ASSERT_GT(n, 0) << std::strerror(errno);
        s.remove_prefix(static_cast<size_t>(n));
    }
}

// Reads one line, or returns "" at EOF / deadline.
std::string read_line(int fd, std::chrono::milliseconds within = 5000ms) {
    auto deadline = Clock::now() + within;
    std::string in;
    char c;
    while (Clock::now() < deadline) {
        pollfd p{fd, POLLIN, 0};
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
        if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
        ssize_t n = ::recv(fd, &c, 1, 0);
        if (n <= 0) break;
        if (c == '\n') return in;
        in += c;
    }
    return in;
}

struct CtlResult {
    int exit_code = -1;
    std::string out;
};

// Runs mtls-agentctl with args; optionally as another uid. Captures stdout.
CtlResult run_ctl(std::vector<std::string> args, uid_t as_uid = static_cast<uid_t>(-1)) {
    int pipefd[2];
    EXPECT_EQ(::pipe(pipefd), 0);
    pid_t pid = ::fork();
    if (pid == 0) {
        ::dup2(pipefd[1], 1);
        ::close(pipefd[0]);
        if (as_uid != static_cast<uid_t>(-1)) {
            if (::setgid(65534) != 0 || ::setuid(as_uid) != 0) _exit(99);
        }
        std::vector<char*> argv;
        std::string prog = MTLS_AGENTCTL;
        argv.push_back(prog.data());
        for (auto& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        ::execv(prog.c_str(), argv.data());
        _exit(98);
    }
    ::close(pipefd[1]);
    CtlResult r;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(pipefd[0], buf, sizeof buf)) > 0) r.out.append(buf, static_cast<size_t>(n));
    ::close(pipefd[0]);
    int st = 0;
    ::waitpid(pid, &st, 0);
    r.exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return r;
}

class AdminServerTest : public ::testing::Test {
  protected:
    void SetUp() override {
        char tmpl[] = "/tmp/mtls-admin-XXXXXX";
        dir_ = ::mkdtemp(tmpl);
        ::chmod(dir_.c_str(), 0755);  // so another uid can reach the socket in the refusal test
        path_ = (dir_ / "admin.sock").string();
    }
    void TearDown() override {
        if (server_) {
            asio::post(io_, [this] { server_->stop(); });
        }
        work_.reset();
        io_.stop();
        if (thread_.joinable()) thread_.join();
        server_.reset();
        fs::remove_all(dir_);
    }

    void start(mode_t mode = 0660, std::vector<uid_t> uids = {}) {
        mtls::admin::ServerOptions opt;
        opt.listener.path = path_;
        opt.listener.mode = mode;
        opt.policy.allowed_uids = std::move(uids);
        opt.read_timeout = 400ms;
        server_ = std::make_unique<mtls::admin::Server>(io_, opt);
        server_->add_command(
            "status",
            [this](const nlohmann::json&, const PeerCred&) -> asio::awaitable<nlohmann::json> {
                co_return nlohmann::json{{"state", state_}, {"reasons", nlohmann::json::array()}};
            });
        server_->add_command(
            "echo",
            [](const nlohmann::json& args, const PeerCred& who) -> asio::awaitable<nlohmann::json> {
                co_return nlohmann::json{{"args", args}, {"uid", who.uid}};
            },
            {{"x", nlohmann::json::value_t::number_integer},
             {"flag", nlohmann::json::value_t::boolean}});
        server_->add_command(
            "fail", [](const nlohmann::json&, const PeerCred&) -> asio::awaitable<nlohmann::json> {
                throw CommandError("rotate_failed", "EST enroll failed: server said 500");
                co_return nlohmann::json{};
            });
        server_->start();
        thread_ = std::thread([this] { io_.run(); });
    }

    nlohmann::json call(const std::string& line) {
        int fd = connect_to(path_);
        EXPECT_GE(fd, 0);
        send_all(fd, line + "\n");
        auto reply = read_line(fd);
        ::close(fd);
        return nlohmann::json::parse(reply);
    }

    fs::path dir_;
    std::string path_;
    std::string state_ = "healthy";
    asio::io_context io_;
    std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_{
        io_.get_executor()};
    std::unique_ptr<mtls::admin::Server> server_;
    std::thread thread_;
};

}  // namespace

TEST_F(AdminServerTest, SocketHasConfiguredModeAndIsRemovedOnStop) {
    start(0640);
    struct stat st {};
    ASSERT_EQ(::lstat(path_.c_str(), &st), 0);
    EXPECT_TRUE(S_ISSOCK(st.st_mode));
    EXPECT_EQ(st.st_mode & 0777, 0640u);
    std::promise<void> stopped;
    asio::post(io_, [&] {
        server_->stop();
        stopped.set_value();
    });
    stopped.get_future().wait();
    EXPECT_FALSE(fs::exists(path_));
}

TEST_F(AdminServerTest, StaleSocketIsReplacedLiveOneAndNonSocketAreNot) {
    // A stale socket file: bound, never listening, closed (what a SIGKILLed agent leaves).
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path_.c_str(), sizeof a.sun_path - 1);
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    ::close(fd);
    start();
    EXPECT_EQ(call(R"({"v":1,"cmd":"status"})")["result"]["state"], "healthy");

    asio::io_context other;
    mtls::admin::ServerOptions opt;
    opt.listener.path = path_;
    mtls::admin::Server second(other, opt);
    try {
        second.start();
        FAIL() << "a live socket was replaced";
    } catch (const std::runtime_error& e) {
        EXPECT_EQ(std::string(e.what()),
                  "another process is listening on " + path_ + " (is mtls-agent already running?)");
    }

    auto file = (dir_ / "not-a-socket").string();
    std::ofstream(file) << "x";
    opt.listener.path = file;
    mtls::admin::Server third(other, opt);
    try {
        third.start();
        FAIL() << "a regular file was replaced";
    } catch (const std::runtime_error& e) {
        EXPECT_EQ(std::string(e.what()),
                  file + " exists and is not a socket; refusing to replace it");
    }
}

TEST_F(AdminServerTest, CtlExitCodesFollowTheState) {
    start();
    auto r = run_ctl({"status", "--socket", path_});
    EXPECT_EQ(r.exit_code, 0);
    EXPECT_NE(r.out.find("state:        healthy"), std::string::npos) << r.out;
    state_ = "degraded";
    EXPECT_EQ(run_ctl({"status", "--socket", path_}).exit_code, 1);
    state_ = "failing";
    r = run_ctl({"--json", "status", "--socket", path_});
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_EQ(nlohmann::json::parse(r.out)["state"], "failing");
}

TEST_F(AdminServerTest, CtlReportsUnreachableAndCommandFailures) {
    EXPECT_EQ(run_ctl({"status", "--socket", (dir_ / "missing.sock").string()}).exit_code, 3);
    start();
    // "rotate" is not registered on this test server: the failure is a command failure (2).
    EXPECT_EQ(run_ctl({"rotate", "--socket", path_}).exit_code, 2);
    EXPECT_EQ(call(R"({"v":1,"cmd":"fail"})")["error"]["code"], "rotate_failed");
}

TEST_F(AdminServerTest, CallerWithUidNotAllowedIsRefused) {
    start(0666);
    auto r = run_ctl({"status", "--socket", path_}, 65534);
    EXPECT_EQ(r.exit_code, 4);
}

TEST_F(AdminServerTest, AllowedUidIsServed) {
    start(0666, {65534});
    EXPECT_EQ(run_ctl({"status", "--socket", path_}, 65534).exit_code, 0);
}

TEST_F(AdminServerTest, MalformedRequestGetsErrorAndConnectionStaysUsable) {
    start();
    int fd = connect_to(path_);
    ASSERT_GE(fd, 0);
    send_all(fd, "hello\n");
    auto bad = nlohmann::json::parse(read_line(fd));
    EXPECT_EQ(bad["error"]["code"], "bad_request");
    send_all(fd, R"({"v":1,"cmd":"nope"})"
                 "\n");
    auto unknown = nlohmann::json::parse(read_line(fd));
    EXPECT_EQ(unknown["error"]["message"], "unknown command \"nope\" (known: echo, fail, status)");
    send_all(fd, R"({"v":1,"cmd":"echo","args":{"x":1}})"
                 "\n");
    auto ok = nlohmann::json::parse(read_line(fd));
    EXPECT_EQ(ok["result"]["args"]["x"], 1);
    // A wrong argument type, an argument the command does not take, a duplicate key: all
    // bad_request with what is wrong (not "internal" with a JSON library's text).
    for (const auto& [line, says] : std::vector<std::pair<std::string, std::string>>{
             {R"({"v":1,"cmd":"echo","args":{"flag":"yes"}})",
              "argument \"flag\" of echo must be a boolean"},
             {R"({"v":1,"cmd":"echo","args":{"wiat":true}})",
              "unknown argument \"wiat\" for echo (it takes: flag, x)"},
             {R"({"v":1,"cmd":"status","args":{"wait":true}})",
              "unknown argument \"wait\" for status (it takes none)"},
             {R"({"v":1,"cmd":"echo","cmd":"fail"})", "duplicate key \"cmd\" in request"},
             {R"({"v":1,"cmd":"echo","args":{"x":1,"x":2}})", "duplicate key \"x\" in request"}}) {
        send_all(fd, line + "\n");
        auto answer = nlohmann::json::parse(read_line(fd));
        EXPECT_EQ(answer["error"]["code"], "bad_request") << line << " -> " << answer;
        EXPECT_EQ(answer["error"]["message"], says) << line;
    }
    send_all(fd, R"({"v":1,"cmd":"echo","args":{"flag":true}})"
                 "\n");
    EXPECT_EQ(nlohmann::json::parse(read_line(fd))["result"]["args"]["flag"], true);
    ::close(fd);
}

TEST_F(AdminServerTest, OversizedRequestIsRefused) {
    start();
    int fd = connect_to(path_);
    ASSERT_GE(fd, 0);
    std::string big(70 * 1024, 'a');
    ::send(fd, big.data(), big.size(), MSG_NOSIGNAL);  // the server may close before all is sent
    auto reply = nlohmann::json::parse(read_line(fd));
    EXPECT_EQ(reply["error"]["message"], "request line longer than 65536 bytes");
    ::close(fd);
}

TEST_F(AdminServerTest, SlowClientTimesOutWithoutBlockingOthers) {
    start();
    int slow = connect_to(path_);
    ASSERT_GE(slow, 0);
    send_all(slow, R"({"v":1,)");  // and never finishes
    // Other clients are served meanwhile.
    for (int i = 0; i < 5; ++i)
        EXPECT_EQ(call(R"({"v":1,"cmd":"status"})")["result"]["state"], "healthy");
    auto reply = read_line(slow, 5000ms);
    ASSERT_FALSE(reply.empty()) << "no timeout answer";
    EXPECT_EQ(nlohmann::json::parse(reply)["error"]["code"], "timeout");
    char c;
    EXPECT_EQ(::recv(slow, &c, 1, 0), 0) << "connection should be closed after a timeout";
    ::close(slow);
}
