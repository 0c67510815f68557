#include "agent/identity/identity_store.hpp"
#include "common/encoding.hpp"

#include <gtest/gtest.h>

#include <openssl/x509v3.h>

using namespace mtls;
using identity::Identity;
using identity::IdentityStore;

namespace {

struct Parts {
    ossl::X509Ptr cert;
    ossl::PKey key;
};

Parts self_signed(const char* cn, long valid_from = -60, long valid_to = 3600) {
    Parts p;
    p.key.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
    p.cert.reset(X509_new());
    X509_set_version(p.cert.get(), X509_VERSION_3);
    ASN1_INTEGER_set(X509_get_serialNumber(p.cert.get()), 1);
    X509_gmtime_adj(X509_getm_notBefore(p.cert.get()), valid_from);
    X509_gmtime_adj(X509_getm_notAfter(p.cert.get()), valid_to);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(p.cert.get()), "CN", MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>(cn), -1, -1, 0);
    X509_set_issuer_name(p.cert.get(), X509_get_subject_name(p.cert.get()));
    X509_set_pubkey(p.cert.get(), p.key.get());
    X509_sign(p.cert.get(), p.key.get(), EVP_sha256());
    return p;
}

std::string der(X509* c) {
    unsigned char* d = nullptr;
    int n = i2d_X509(c, &d);
    std::string s(reinterpret_cast<char*>(d), static_cast<size_t>(n));
    OPENSSL_free(d);
    return s;
}

TEST(Identity, DerivesThumbprintTimesAndKeyId) {
    auto p = self_signed("host-1");
    std::string expected = encoding::sha256(der(p.cert.get()));
    auto id = Identity::create(std::move(p.cert), {}, std::move(p.key), "", 7);
    EXPECT_EQ(id->thumbprint_sha256(), expected);
    EXPECT_EQ(id->x5t_s256(), encoding::base64url(expected));
    EXPECT_EQ(id->x5t_s256().find('='), std::string::npos);
    EXPECT_EQ(id->key_id().size(), 32u);
    EXPECT_EQ(id->generation(), 7u);
    EXPECT_EQ(id->subject(), "CN=host-1");
    auto now = Identity::Clock::now();
    EXPECT_TRUE(id->valid_at(now));
    EXPECT_FALSE(id->valid_at(now + std::chrono::hours(2)));
    EXPECT_FALSE(id->valid_at(now - std::chrono::minutes(5)));
}

TEST(Identity, RefusesAKeyThatDoesNotMatch) {
    auto a = self_signed("a");
    auto b = self_signed("b");
    EXPECT_THROW(Identity::create(std::move(a.cert), {}, std::move(b.key), "", 1),
                 std::runtime_error);
}

TEST(IdentityStore, PublishesNewerGenerationsAndTellsSubscribers) {
    IdentityStore store;
    EXPECT_EQ(store.current(), nullptr);
    int calls = 0;
    std::uint64_t seen = 0;
    auto sub = store.subscribe([&](const identity::IdentityPtr& now, const identity::IdentityPtr&) {
        ++calls;
        seen = now ? now->generation() : 0;
    });
    auto p1 = self_signed("one");
    auto id1 =
        Identity::create(std::move(p1.cert), {}, std::move(p1.key), "k1", store.next_generation());
    store.publish(id1);
    EXPECT_EQ(store.current(), id1);
    EXPECT_EQ(calls, 1);
    EXPECT_EQ(seen, 1u);
    // A holder keeps its snapshot across a rotation.
    auto held = store.current();
    auto p2 = self_signed("two");
    store.publish(
        Identity::create(std::move(p2.cert), {}, std::move(p2.key), "k2", store.next_generation()));
    EXPECT_EQ(held->key_id(), "k1");
    EXPECT_EQ(store.current()->key_id(), "k2");
    EXPECT_EQ(calls, 2);
    // Going back is refused.
    EXPECT_THROW(store.publish(id1), std::invalid_argument);
    sub.reset();
    store.clear();
    EXPECT_EQ(calls, 2);
    EXPECT_EQ(store.current(), nullptr);
}

}  // namespace
