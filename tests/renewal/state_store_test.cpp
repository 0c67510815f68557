#include "agent/renewal/state_store.hpp"
#include "agent/renewal/instance.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

using namespace mtls::renewal;
namespace fs = std::filesystem;

namespace {

fs::path temp_dir() {
    char tmpl[] = "/tmp/mtls-state-XXXXXX";
    return fs::path(::mkdtemp(tmpl));
}

std::string error_of(std::string_view text) {
    try {
        parse_state(text, "identity.json");
    } catch (const StateError& e) {
        return e.what();
    }
    return "ok";
}

}  // namespace

TEST(StateStore, MissingFileIsNoState) {
    auto dir = temp_dir();
    EXPECT_FALSE(StateStore(dir).load().has_value());
    fs::remove_all(dir);
}

TEST(StateStore, RoundTripsWithMode0600) {
    auto dir = temp_dir();
    StateStore store(dir / "state");
    State s;
    s.current_key = KeyRef{"0a0b", "mtls-agent-1", "ec-p256"};
    s.chain_pem = "-----BEGIN CERTIFICATE-----\n...\n";
    s.retiring.push_back({KeyRef{"ff", "mtls-agent-0", "rsa-2048"}, 1700000000});
    s.est_ca_pem = "ca";
    store.save(s);
    struct stat st {};
    ASSERT_EQ(::stat(store.path().c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    auto back = store.load();
    ASSERT_TRUE(back);
    EXPECT_EQ(back->current_key->id_hex, "0a0b");
    EXPECT_EQ(back->retiring.at(0).destroy_after, 1700000000);
    EXPECT_EQ(back->referenced_ids(), (std::vector<std::string>{"0a0b", "ff"}));
    EXPECT_EQ(back->est_ca_pem, "ca");
    fs::remove_all(dir);
}

TEST(StateStore, KeepsTheInstanceAndThePendingKey) {
    State s;
    s.instance = "00112233445566aa";
    s.pending_key = "00112233445566aa0102030405060708";
    auto back = parse_state(serialize_state(s), "identity.json");
    EXPECT_EQ(back.instance, s.instance);
    EXPECT_EQ(back.pending_key, s.pending_key);
    EXPECT_TRUE(back.referenced_ids().empty()) << "a pending key is not referenced";
    // Written by a version without them: no instance, nothing pending.
    auto old = parse_state(R"({"version":1,"current_key":null,"retiring":[]})", "identity.json");
    EXPECT_EQ(old.instance, "");
    EXPECT_FALSE(old.pending_key);
    EXPECT_EQ(error_of(R"({"version":1,"instance":"abc"})"),
              "identity.json: state.instance must be 8 bytes of hex");
    EXPECT_EQ(error_of(R"({"version":1,"pending_key":"zz"})"),
              "identity.json: state.pending_key must be 1-64 bytes of hex");
}

TEST(StateStore, KeepsTheLastRenewalOutcome) {
    State s;
    s.last_renewal = LastRenewal{1'700'000'000, false, "EST simplereenroll: HTTP 500", 3};
    auto back = parse_state(serialize_state(s), "identity.json");
    ASSERT_TRUE(back.last_renewal);
    EXPECT_EQ(back.last_renewal->at, 1'700'000'000);
    EXPECT_FALSE(back.last_renewal->ok);
    EXPECT_EQ(back.last_renewal->message, "EST simplereenroll: HTTP 500");
    EXPECT_EQ(back.last_renewal->consecutive_failures, 3);
    // Written by a version without it: never.
    auto old = parse_state(R"({"version":1,"current_key":null,"retiring":[]})", "identity.json");
    EXPECT_FALSE(old.last_renewal);
    // consecutive_failures is optional; the rest is checked.
    auto min = parse_state(R"({"version":1,"last_renewal":{"at":5,"ok":true,"message":"ok"}})",
                           "identity.json");
    ASSERT_TRUE(min.last_renewal);
    EXPECT_EQ(min.last_renewal->consecutive_failures, 0);
    EXPECT_EQ(error_of(R"({"version":1,"last_renewal":{"at":"x","ok":true,"message":""}})"),
              "identity.json: state.last_renewal.at must be a non-negative integer");
    EXPECT_EQ(error_of(R"({"version":1,"last_renewal":{"at":1,"message":""}})"),
              "identity.json: last_renewal.ok is missing");
}

TEST(StateStore, CorruptStateIsAClearError) {
    EXPECT_EQ(error_of("{"), "identity.json: not valid JSON");
    EXPECT_EQ(error_of("[]"), "identity.json: top level must be an object");
    EXPECT_EQ(error_of(R"({"version":2})"),
              "identity.json: unsupported state version 2 (expected 1)");
    EXPECT_EQ(
        error_of(
            R"({"version":1,"current_key":{"id":"zz","label":"a","type":"ec-p256"},"chain_pem":"x"})"),
        "identity.json: current_key.id must be 1-64 bytes of hex");
    EXPECT_EQ(error_of(R"({"version":1,"current_key":{"id":"aa","label":"a","type":"ec-p256"}})"),
              "identity.json: current_key without chain_pem");
    EXPECT_EQ(error_of(R"({"version":1,"retiring":[{"key":{"id":"aa","label":"a","type":"x"}}]})"),
              "identity.json: retiring[0].destroy_after is missing");
}

TEST(StateStore, TruncatedFileOnDiskIsReportedWithItsPath) {
    auto dir = temp_dir();
    std::ofstream(dir / "identity.json") << R"({"version":1,"current_k)";
    try {
        StateStore(dir).load();
        FAIL();
    } catch (const StateError& e) {
        EXPECT_EQ(std::string(e.what()), (dir / "identity.json").string() + ": not valid JSON");
    }
    fs::remove_all(dir);
}

TEST(Instance, MadeOnceKeptInItsFileAndOwnsOnlyItsIds) {
    auto dir = temp_dir();
    auto a = Instance::load_or_create(dir / "state", "");
    EXPECT_TRUE(a.created());
    EXPECT_EQ(a.hex().size(), 16u);
    struct stat st {};
    ASSERT_EQ(::stat((dir / "state" / "instance").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    auto again = Instance::load_or_create(dir / "state", "ffffffffffffffff");
    EXPECT_FALSE(again.created());
    EXPECT_EQ(again.hex(), a.hex()) << "the file wins over identity.json";
    const auto id = a.new_key_id();
    EXPECT_EQ(id.size(), 16u);
    EXPECT_TRUE(a.owns(id));
    EXPECT_NE(a.new_key_id(), id);
    EXPECT_FALSE(a.owns(id.substr(0, 15)));
    EXPECT_FALSE(a.owns(std::string(16, '\x01')));
    // Lost file: identity.json's instance is taken back.
    fs::remove(dir / "state" / "instance");
    auto back = Instance::load_or_create(dir / "state", a.hex());
    EXPECT_TRUE(back.created());
    EXPECT_EQ(back.hex(), a.hex());
    // Not an instance id: a clear error, nothing guessed.
    std::ofstream(dir / "state" / "instance") << "nonsense\n";
    EXPECT_THROW(Instance::load_or_create(dir / "state", ""), std::runtime_error);
    fs::remove_all(dir);
}
