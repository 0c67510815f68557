#include "agent/admin/protocol.hpp"

#include <gtest/gtest.h>

using namespace mtls::admin;

namespace {
std::string code_of(std::string_view line) {
    try {
        parse_request(line);
    } catch (const CommandError& e) {
        return e.code() + ": " + e.what();
    }
    return "ok";
}
}  // namespace

TEST(AdminProtocol, ParsesAValidRequest) {
    auto r = parse_request(R"({"v":1,"cmd":"rotate","args":{"wait":true}})");
    EXPECT_EQ(r.cmd, "rotate");
    EXPECT_EQ(r.args["wait"], true);
    EXPECT_EQ(parse_request(R"({"v":1,"cmd":"status"})").args, nlohmann::json::object());
}

TEST(AdminProtocol, RejectsMalformedRequestsWithReasons) {
    EXPECT_EQ(code_of("status"), "bad_request: request is not valid JSON (one object per line)");
    EXPECT_EQ(code_of("[1]"), "bad_request: request must be a JSON object");
    EXPECT_EQ(code_of(R"({"cmd":"status"})"), "bad_request: request needs \"v\": 1");
    EXPECT_EQ(code_of(R"({"v":2,"cmd":"status"})"),
              "unsupported_version: protocol version 2 is not supported (this agent speaks 1)");
    EXPECT_EQ(code_of(R"({"v":1,"cmd":""})"), "bad_request: request needs \"cmd\": a command name");
    EXPECT_EQ(code_of(R"({"v":1,"cmd":"x","args":[]})"), "bad_request: \"args\" must be an object");
    EXPECT_EQ(code_of(R"({"v":1,"cmd":"x","extra":1})"),
              "bad_request: unknown field \"extra\" in request");
}

TEST(AdminProtocol, ResponsesAreSingleLines) {
    auto ok = ok_line({{"text", "a\nb"}});
    EXPECT_EQ(ok.find('\n'), ok.size() - 1);
    auto err = error_line("refused", "no");
    EXPECT_EQ(nlohmann::json::parse(err)["error"]["code"], "refused");
}
