#include "agent/net/conn_caps.hpp"
#include "agent/net/accept_guard.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace mtls::net {
namespace {

using Refusal = ConnectionCaps::Refusal;

TEST(ConnectionCaps, PerCallerAndTotalCapsWithSlotsKeptForPrivilegedCallers) {
    ConnectionCaps caps({.total = 6, .per_caller = 2, .reserved = 2});
    std::vector<ConnectionCaps::Slot> held;
    for (const char* who : {"uid:1000", "uid:1000"}) {
        auto a = caps.admit(who, false);
        ASSERT_TRUE(a.slot);
        held.push_back(std::move(a.slot));
    }
    auto third = caps.admit("uid:1000", false);
    EXPECT_FALSE(third.slot);
    EXPECT_EQ(third.refusal, Refusal::per_caller);
    EXPECT_EQ(third.open, 2u);
    for (const char* who : {"uid:1001", "uid:1001"}) held.push_back(caps.admit(who, false).slot);
    // 4 of 6 open: the last 2 are kept for privileged callers.
    auto other = caps.admit("uid:1002", false);
    EXPECT_FALSE(other.slot);
    EXPECT_EQ(other.refusal, Refusal::total);
    auto root1 = caps.admit("uid:0", true);
    auto root2 = caps.admit("uid:0", true);  // not held to per_caller
    EXPECT_TRUE(root1.slot);
    EXPECT_TRUE(root2.slot);
    EXPECT_EQ(caps.admit("uid:0", true).refusal, Refusal::total);
    EXPECT_EQ(caps.open(), 6u);
    // A slot given back is free again, for its caller too.
    held.erase(held.begin());
    EXPECT_EQ(caps.open_by("uid:1000"), 1u);
    EXPECT_TRUE(caps.admit("uid:1002", false).slot);  // admitted, then released at once
    EXPECT_EQ(caps.open(), 5u);
}

TEST(ConnectionCaps, SlotsMayOutliveTheCaps) {
    ConnectionCaps::Slot s;
    {
        ConnectionCaps caps({.total = 1, .per_caller = 1});
        s = caps.admit("127.0.0.1", false).slot;
        EXPECT_TRUE(s);
    }
    s = {};  // releasing after the caps are gone is safe
    EXPECT_FALSE(s);
}

TEST(ConnectionCaps, DerivedFromTheDescriptorLimit) {
    auto c = derive_caps(1024);
    EXPECT_EQ(c.total, (1024u - 128u) / 2);
    EXPECT_EQ(c.per_caller, c.total / 4);
    EXPECT_EQ(derive_caps(1u << 20).total, 4096u);
    auto small = derive_caps(64);
    EXPECT_GE(small.total, 2u);
    EXPECT_LT(small.total, 64u);
    EXPECT_GE(small.per_caller, 1u);
}

TEST(AcceptBackoff, DoublesFrom10msTo1s) {
    AcceptBackoff b;
    EXPECT_EQ(b.next().count(), 10);
    EXPECT_EQ(b.next().count(), 20);
    for (int i = 0; i < 10; ++i) b.next();
    EXPECT_EQ(b.next().count(), 1000);
    b.reset();
    EXPECT_EQ(b.next().count(), 10);
}

}  // namespace
}  // namespace mtls::net
