// Unit tests of revocation/: OCSP responses and CRLs made here with OpenSSL, checked by the
// core (signatures, delegated responders, CertIDs, times, reasons), and the checker's
// cache, local CRL files and staples — no network.
#include <gtest/gtest.h>

#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "revocation/cert_info.hpp"
#include "revocation/checker.hpp"
#include "revocation/crl.hpp"
#include "revocation/ocsp.hpp"
#include "tests/support/ocsp_pki.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/test_pki.hpp"

namespace mtls::revocation {
namespace {

using test::CertUsage;

void core_add_ext(X509* c, X509* issuer, int nid, const char* value) {
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, issuer, c, nullptr, nullptr, 0);
    ossl::X509ExtPtr ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value));
    ASSERT_TRUE(ext);
    ASSERT_EQ(X509_add_ext(c, ext.get(), -1), 1);
}

// A certificate for `key` signed by `ca` with the given extensions (nid, value).
ossl::X509Ptr core_issue(const test::TestCa& ca, EVP_PKEY* key, const std::string& cn,
                         const std::vector<std::pair<int, std::string>>& exts, long serial) {
    ossl::X509Ptr c(X509_new());
    X509_set_version(c.get(), X509_VERSION_3);
    ASN1_INTEGER_set(X509_get_serialNumber(c.get()), serial);
    ossl::X509NamePtr name(X509_NAME_new());
    X509_NAME_add_entry_by_txt(name.get(), "CN", MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
    X509_set_subject_name(c.get(), name.get());
    X509_set_issuer_name(c.get(), X509_get_subject_name(ca.cert.get()));
    X509_gmtime_adj(X509_getm_notBefore(c.get()), -60);
    X509_gmtime_adj(X509_getm_notAfter(c.get()), 86400);
    X509_set_pubkey(c.get(), key);
    for (const auto& [nid, v] : exts) core_add_ext(c.get(), ca.cert.get(), nid, v.c_str());
    EXPECT_GT(X509_sign(c.get(), ca.key.get(), EVP_sha256()), 0);
    return c;
}

struct OcspSpec {
    test::OcspAnswer answer;
    X509* signer = nullptr;  // default: the issuer
    EVP_PKEY* signer_key = nullptr;
};

std::string make_ocsp(X509* leaf, const test::TestCa& ca, const OcspSpec& s) {
    return test::make_ocsp_response(leaf, ca.cert.get(), s.signer ? s.signer : ca.cert.get(),
                                    s.signer_key ? s.signer_key : ca.key.get(), s.answer);
}

std::string make_crl(const test::TestCa& ca, const std::vector<std::pair<X509*, int>>& revoked,
                     long next_off, bool pem, EVP_PKEY* sign_key = nullptr) {
    ossl::Owned<X509_CRL, &X509_CRL_free> crl(X509_CRL_new());
    X509_CRL_set_version(crl.get(), X509_CRL_VERSION_2);
    X509_CRL_set_issuer_name(crl.get(), X509_get_subject_name(ca.cert.get()));
    ossl::Asn1Time last(X509_gmtime_adj(nullptr, -60)), next(X509_gmtime_adj(nullptr, next_off));
    X509_CRL_set1_lastUpdate(crl.get(), last.get());
    X509_CRL_set1_nextUpdate(crl.get(), next.get());
    for (const auto& [cert, reason] : revoked) {
        X509_REVOKED* r = X509_REVOKED_new();
        X509_REVOKED_set_serialNumber(r, X509_get_serialNumber(cert));
        ossl::Asn1Time when(X509_gmtime_adj(nullptr, -1800));
        X509_REVOKED_set_revocationDate(r, when.get());
        if (reason >= 0) {
            ASN1_ENUMERATED* e = ASN1_ENUMERATED_new();
            ASN1_ENUMERATED_set(e, reason);
            X509_REVOKED_add1_ext_i2d(r, NID_crl_reason, e, 0, 0);
            ASN1_ENUMERATED_free(e);
        }
        X509_CRL_add0_revoked(crl.get(), r);
    }
    X509_CRL_sort(crl.get());
    EXPECT_GT(X509_CRL_sign(crl.get(), sign_key ? sign_key : ca.key.get(), EVP_sha256()), 0);
    ossl::Bio b(BIO_new(BIO_s_mem()));
    if (pem)
        PEM_write_bio_X509_CRL(b.get(), crl.get());
    else
        i2d_X509_CRL_bio(b.get(), crl.get());
    char* p = nullptr;
    long n = BIO_get_mem_data(b.get(), &p);
    return std::string(p, static_cast<std::size_t>(n));
}

class RevocationCore : public ::testing::Test {
  protected:
    void SetUp() override {
        ca = test::make_test_ca("revocation test CA");
        other = test::make_test_ca("revocation other CA");
        leaf_key = test::make_software_key();
        leaf = test::issue_cert(ca, leaf_key.get(), "partner.example", CertUsage::server);
        responder_key = test::make_software_key();
        responder = core_issue(ca, responder_key.get(), "OCSP responder",
                               {{NID_ext_key_usage, "OCSPSigning"}}, 77);
    }
    test::TestCa ca, other;
    ossl::PKey leaf_key, responder_key;
    ossl::X509Ptr leaf, responder;
    const std::chrono::seconds skew{300};
};

TEST_F(RevocationCore, GoodResponseSignedByTheIssuer) {
    auto v = ocsp::verify_response(make_ocsp(leaf.get(), ca, {}), leaf.get(), ca.cert.get(), skew);
    EXPECT_EQ(v.status, Status::good) << v.why;
    ASSERT_TRUE(v.next_update);
    EXPECT_GT(*v.next_update, Clock::now());
    EXPECT_EQ(v.serial, serial_of(leaf.get()));
}

TEST_F(RevocationCore, RevokedResponseCarriesReasonAndTime) {
    OcspSpec s;
    s.answer.status = V_OCSP_CERTSTATUS_REVOKED;
    s.answer.reason = OCSP_REVOKED_STATUS_KEYCOMPROMISE;
    auto v = ocsp::verify_response(make_ocsp(leaf.get(), ca, s), leaf.get(), ca.cert.get(), skew);
    EXPECT_EQ(v.status, Status::revoked);
    EXPECT_EQ(reason_name(v.reason), "keyCompromise");
    ASSERT_TRUE(v.revoked_at);
    EXPECT_LT(*v.revoked_at, Clock::now());
}

TEST_F(RevocationCore, DelegatedResponderNeedsOcspSigning) {
    OcspSpec s;
    s.signer = responder.get();
    s.signer_key = responder_key.get();
    auto v = ocsp::verify_response(make_ocsp(leaf.get(), ca, s), leaf.get(), ca.cert.get(), skew);
    EXPECT_EQ(v.status, Status::good) << v.why;

    // A certificate of the same CA without id-kp-OCSPSigning may not answer for it.
    auto plain_key = test::make_software_key();
    auto plain =
        core_issue(ca, plain_key.get(), "not a responder", {{NID_ext_key_usage, "serverAuth"}}, 78);
    s.signer = plain.get();
    s.signer_key = plain_key.get();
    v = ocsp::verify_response(make_ocsp(leaf.get(), ca, s), leaf.get(), ca.cert.get(), skew);
    EXPECT_EQ(v.status, Status::unknown);
    EXPECT_EQ(v.problem, Problem::bad_response);
}

TEST_F(RevocationCore, ResponseSignedByAnotherCaIsRefused) {
    OcspSpec s;
    s.signer = other.cert.get();
    s.signer_key = other.key.get();
    auto v = ocsp::verify_response(make_ocsp(leaf.get(), ca, s), leaf.get(), ca.cert.get(), skew);
    EXPECT_EQ(v.problem, Problem::bad_response);
    EXPECT_NE(v.why.find("not signed"), std::string::npos) << v.why;
}

TEST_F(RevocationCore, StaleOrFutureResponsesAreRefused) {
    OcspSpec s;
    s.answer.this_offset = -7200;
    s.answer.next_offset = -3600;  // nextUpdate an hour ago
    auto v = ocsp::verify_response(make_ocsp(leaf.get(), ca, s), leaf.get(), ca.cert.get(), skew);
    EXPECT_EQ(v.problem, Problem::bad_response);
    s.answer.this_offset = 3600;  // thisUpdate an hour ahead
    s.answer.next_offset = 7200;
    v = ocsp::verify_response(make_ocsp(leaf.get(), ca, s), leaf.get(), ca.cert.get(), skew);
    EXPECT_EQ(v.problem, Problem::bad_response);
    s.answer.this_offset = 100;  // within the skew
    v = ocsp::verify_response(make_ocsp(leaf.get(), ca, s), leaf.get(), ca.cert.get(), skew);
    EXPECT_EQ(v.status, Status::good) << v.why;
}

TEST_F(RevocationCore, ResponseForAnotherCertificateIsRefused) {
    auto k = test::make_software_key();
    auto sibling = test::issue_cert(ca, k.get(), "sibling", CertUsage::server);
    auto v =
        ocsp::verify_response(make_ocsp(sibling.get(), ca, {}), leaf.get(), ca.cert.get(), skew);
    EXPECT_EQ(v.problem, Problem::bad_response);
    EXPECT_NE(v.why.find("no status for this certificate"), std::string::npos) << v.why;
}

TEST_F(RevocationCore, Sha256CertIdAndErrorStatusesAndGarbage) {
    OcspSpec s;
    s.answer.id_md = EVP_sha256();
    EXPECT_EQ(
        ocsp::verify_response(make_ocsp(leaf.get(), ca, s), leaf.get(), ca.cert.get(), skew).status,
        Status::good);
    s = {};
    s.answer.response_status = OCSP_RESPONSE_STATUS_TRYLATER;
    auto v = ocsp::verify_response(make_ocsp(leaf.get(), ca, s), leaf.get(), ca.cert.get(), skew);
    EXPECT_EQ(v.problem, Problem::responder_unknown);
    s = {};
    s.answer.status = V_OCSP_CERTSTATUS_UNKNOWN;
    v = ocsp::verify_response(make_ocsp(leaf.get(), ca, s), leaf.get(), ca.cert.get(), skew);
    EXPECT_EQ(v.problem, Problem::responder_unknown);
    v = ocsp::verify_response("\x30\x03\x0a\x01", leaf.get(), ca.cert.get(), skew);
    EXPECT_EQ(v.problem, Problem::bad_response);
}

TEST_F(RevocationCore, RequestHasSha1CertIdAndOptionalNonce) {
    OcspRequestPtr req;
    auto der = ocsp::build_request(leaf.get(), ca.cert.get(), true, &req);
    ASSERT_FALSE(der.empty());
    ASSERT_EQ(OCSP_request_onereq_count(req.get()), 1);
    OCSP_CERTID* id = OCSP_onereq_get0_id(OCSP_request_onereq_get0(req.get(), 0));
    ASN1_OBJECT* md = nullptr;
    ASSERT_EQ(OCSP_id_get0_info(nullptr, &md, nullptr, nullptr, id), 1);
    EXPECT_EQ(OBJ_obj2nid(md), NID_sha1);
    EXPECT_GE(OCSP_REQUEST_get_ext_by_NID(req.get(), NID_id_pkix_OCSP_Nonce, -1), 0);
}

TEST_F(RevocationCore, CrlLookupDerAndPem) {
    auto k = test::make_software_key();
    auto good_cert = test::issue_cert(ca, k.get(), "good", CertUsage::server);
    for (bool pem : {false, true}) {
        auto crls = crl::parse(make_crl(ca, {{leaf.get(), 1}}, 3600, pem));
        ASSERT_EQ(crls.size(), 1u);
        X509_CRL* c = crls[0].get();
        EXPECT_EQ(crl::check_issuer(c, ca.cert.get()), "");
        EXPECT_EQ(crl::check_time(c, skew), "");
        auto v = crl::lookup(c, leaf.get(), Source::crl);
        EXPECT_EQ(v.status, Status::revoked);
        EXPECT_EQ(reason_name(v.reason), "keyCompromise");
        EXPECT_TRUE(v.revoked_at);
        EXPECT_EQ(crl::lookup(c, good_cert.get(), Source::crl).status, Status::good);
    }
}

TEST_F(RevocationCore, CrlOfAnotherSignerOrExpiredIsRefused) {
    auto forged = crl::parse(make_crl(ca, {}, 3600, false, other.key.get()));
    ASSERT_EQ(forged.size(), 1u);
    EXPECT_NE(crl::check_issuer(forged[0].get(), ca.cert.get()), "");
    auto foreign = crl::parse(make_crl(other, {}, 3600, false));
    EXPECT_NE(crl::check_issuer(foreign[0].get(), ca.cert.get()), "");
    auto expired = crl::parse(make_crl(ca, {}, -3600, false));
    EXPECT_NE(crl::check_time(expired[0].get(), skew), "");
    EXPECT_TRUE(crl::parse("not a CRL").empty());
}

Settings quiet_settings() {
    Settings s;
    s.background_refresh = false;
    return s;
}

TEST_F(RevocationCore, NoSourceIsUnknownWithoutIo) {
    Checker checker(quiet_settings());
    auto v = checker.cached({leaf.get(), ca.cert.get()});
    ASSERT_TRUE(v);
    EXPECT_EQ(v->status, Status::unknown);
    EXPECT_EQ(v->problem, Problem::no_source);
    EXPECT_EQ(checker.check_chain({leaf.get(), ca.cert.get()}).problem, Problem::no_source);
    EXPECT_EQ(checker.check_chain({leaf.get()}).problem, Problem::no_issuer);
}

TEST_F(RevocationCore, CertificatesWithSourcesAreNotAnsweredWithoutIo) {
    auto k = test::make_software_key();
    auto with_aia =
        core_issue(ca, k.get(), "aia", {{NID_info_access, "OCSP;URI:http://127.0.0.1:9/"}}, 90);
    EXPECT_EQ(ocsp_urls(with_aia.get()), std::vector<std::string>{"http://127.0.0.1:9/"});
    Checker checker(quiet_settings());
    EXPECT_FALSE(checker.cached({with_aia.get(), ca.cert.get()}));
}

TEST_F(RevocationCore, StapleIsCachedAndUsedWithoutIo) {
    auto k = test::make_software_key();
    auto with_aia =
        core_issue(ca, k.get(), "aia", {{NID_info_access, "OCSP;URI:http://127.0.0.1:9/"}}, 91);
    Checker checker(quiet_settings());
    auto bad = checker.feed_staple("garbage", with_aia.get(), ca.cert.get());
    EXPECT_EQ(bad.problem, Problem::bad_response);
    EXPECT_FALSE(checker.cached({with_aia.get(), ca.cert.get()}));
    auto sv = checker.feed_staple(make_ocsp(with_aia.get(), ca, {}), with_aia.get(), ca.cert.get());
    EXPECT_EQ(sv.status, Status::good);
    EXPECT_EQ(sv.source, Source::staple);
    auto v = checker.cached({with_aia.get(), ca.cert.get()});
    ASSERT_TRUE(v);
    EXPECT_EQ(v->status, Status::good);
    EXPECT_EQ(v->certs[0].source, Source::cache);
    EXPECT_EQ(v->certs[0].origin, Source::staple);
    EXPECT_EQ(checker.cache_size(), 1u);
}

TEST_F(RevocationCore, LocalCrlFileAnswersAndIsReloaded) {
    test::TempDir dir;
    const auto path = (dir.path() / "partner.crl").string();
    test::write_file(path, make_crl(ca, {}, 3600, false));
    auto s = quiet_settings();
    s.crl_files = {path};
    Checker checker(s);
    auto v = checker.cached({leaf.get(), ca.cert.get()});
    ASSERT_TRUE(v);
    EXPECT_EQ(v->status, Status::good);
    EXPECT_EQ(v->source, Source::crl_file);

    test::write_file(path, make_crl(ca, {{leaf.get(), 1}}, 3600, true));
    checker.update(s);
    v = checker.cached({leaf.get(), ca.cert.get()});
    ASSERT_TRUE(v);
    EXPECT_EQ(v->status, Status::revoked);
    EXPECT_NE(v->describe().find("keyCompromise"), std::string::npos) << v->describe();

    // A CRL past its nextUpdate is no answer: unknown, not good.
    test::write_file(path, make_crl(ca, {}, -60 - 600, false));
    checker.update(s);
    v = checker.cached({leaf.get(), ca.cert.get()});
    ASSERT_TRUE(v);
    EXPECT_EQ(v->status, Status::unknown);
}

TEST_F(RevocationCore, UnreachableResponderIsUnknownAndRemembered) {
    auto k = test::make_software_key();
    // Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
    auto with_aia = core_issue(ca, k.get(), "aia",
                               {{NID_info_access, "OCSP;URI:http://127.0.0.1:9/"},
                                {NID_crl_distribution_points, "URI:http://127.0.0.1:9/x.crl"}},
                               92);
    EXPECT_EQ(crl_urls(with_aia.get()), std::vector<std::string>{"http://127.0.0.1:9/x.crl"});
    auto s = quiet_settings();
    s.fetch_timeout = std::chrono::milliseconds(2000);
    Checker checker(s);
    auto v = checker.check_chain({with_aia.get(), ca.cert.get()});
    EXPECT_EQ(v.status, Status::unknown);
    EXPECT_EQ(v.problem, Problem::unreachable);
    EXPECT_EQ(checker.fetch_failures(), 2u);
    auto c = checker.cached({with_aia.get(), ca.cert.get()});
    ASSERT_TRUE(c) << "a failure is remembered for failure_backoff";
    EXPECT_EQ(c->problem, Problem::unreachable);
}

TEST(RevocationVerdict, ReasonNamesRoundTrip) {
    EXPECT_EQ(reason_from_name("keycompromise"), 1);
    EXPECT_EQ(reason_name(reason_from_name("cACompromise")), "cACompromise");
    EXPECT_EQ(reason_from_name("nope"), -1);
    EXPECT_EQ(reason_name(7), "");
}

}  // namespace
}  // namespace mtls::revocation
