#include "common/encoding.hpp"

#include <gtest/gtest.h>

using namespace mtls::encoding;

TEST(Encoding, Base64RoundTripsAllLengths) {
    std::string s;
    for (int i = 0; i < 40; ++i) {
        EXPECT_EQ(base64_decode(base64(s)), s) << i;
        EXPECT_EQ(base64url_decode(base64url(s)), s) << i;
        s += static_cast<char>(i * 37);
    }
}

TEST(Encoding, Base64KnownVectors) {  // RFC 4648 §10
    EXPECT_EQ(base64("foobar"), "Zm9vYmFy");
    EXPECT_EQ(base64("fooba"), "Zm9vYmE=");
    EXPECT_EQ(base64("foob"), "Zm9vYg==");
    EXPECT_EQ(base64url("\xfb\xff"), "-_8");
}

TEST(Encoding, Base64AcceptsLineBreaksAndMissingPadding) {
    EXPECT_EQ(base64_decode("Zm9v\r\nYmE=\n"), "fooba");
    EXPECT_EQ(base64_decode("Zm9vYg"), "foob");
}

TEST(Encoding, Base64RejectsGarbage) {
    EXPECT_FALSE(base64_decode("Zm9v!mFy"));
    EXPECT_FALSE(base64_decode("Z"));
    EXPECT_FALSE(base64_decode("Zm=9v"));
    EXPECT_FALSE(base64url_decode("ab+/"));
}

// RFC 2045 §6.8 / RFC 7030 §4.2.1 bodies: 64-column lines, each ending in "\n".
TEST(Encoding, Base64LinesAreMimeLines) {
    EXPECT_EQ(base64_lines(""), "");
    EXPECT_EQ(base64_lines("foob"), "Zm9vYg==\n");
    const std::string bytes(100, '\x5a');
    const std::string text = base64_lines(bytes);
    ASSERT_EQ(text.size(), 2 * 65 + 9u);  // 96 bytes in two lines, 4 in "xxxxxx==\n"
    EXPECT_EQ(text[64], '\n');
    EXPECT_EQ(text[129], '\n');
    EXPECT_EQ(text.back(), '\n');
    EXPECT_EQ(text.find('\n'), 64u);
    EXPECT_EQ(base64_decode(text), bytes);
    // Exactly 48 bytes: one full line and its newline, nothing more.
    EXPECT_EQ(base64_lines(std::string(48, 'x')).size(), 65u);
    std::string s;
    for (int i = 0; i < 200; ++i) {
        EXPECT_EQ(base64_decode(base64_lines(s)), s) << i;
        s += static_cast<char>(i * 53);
    }
}

// RFC 8951 §3.1/3.2: a response may come as one line, with or without padding, CRLF or LF.
TEST(Encoding, Base64DecodesEveryVariantAServerMaySend) {
    const std::string bytes(77, '\x9c');
    std::string oneline = base64(bytes);
    std::string crlf;
    for (std::size_t i = 0; i < oneline.size(); i += 64) crlf += oneline.substr(i, 64) + "\r\n";
    std::string unpadded = oneline;
    while (unpadded.back() == '=') unpadded.pop_back();
    ASSERT_NE(unpadded, oneline);
    for (const auto& t : {oneline, crlf, unpadded, base64_lines(bytes), " " + oneline + " \n"})
        EXPECT_EQ(base64_decode(t), bytes) << t;
    EXPECT_FALSE(base64_decode("Zm9vYg==Zm9v"));  // data after padding
    EXPECT_FALSE(base64_decode("Zm9vY==="));
    EXPECT_FALSE(base64_decode("Zm9-"));
}

TEST(Encoding, HexAndSha256) {
    EXPECT_EQ(hex(sha256("abc")),
              "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    EXPECT_EQ(hex_decode("AB:cd:01"), std::string("\xab\xcd\x01"));
    EXPECT_FALSE(hex_decode("abc"));
    EXPECT_FALSE(hex_decode("zz"));
}
