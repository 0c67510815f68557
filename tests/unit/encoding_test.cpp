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

TEST(Encoding, HexAndSha256) {
    EXPECT_EQ(hex(sha256("abc")),
              "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    EXPECT_EQ(hex_decode("AB:cd:01"), std::string("\xab\xcd\x01"));
    EXPECT_FALSE(hex_decode("abc"));
    EXPECT_FALSE(hex_decode("zz"));
}
