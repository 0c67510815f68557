// What a revocation check adds to a new upstream connection when no fetch is needed:
//   Revocation_cached        Checker::cached() on [leaf, issuer, root] with both answers
//                            cached (what the proxy does on the io thread per connection)
//   Revocation_staple        Checker::feed_staple(): verifying a stapled OCSP response (one
//                            ECDSA P-256 verification plus parsing), then cached()
//   Revocation_cert_ids      the per-certificate cache key alone (issuer key SHA-1, serial)
#include <benchmark/benchmark.h>

#include <openssl/ocsp.h>
#include <openssl/x509v3.h>

#include "revocation/cert_info.hpp"
#include "revocation/checker.hpp"
#include "revocation/ossl_types.hpp"
#include "tests/support/ocsp_pki.hpp"
#include "tests/support/test_pki.hpp"

namespace {

using namespace mtls;

std::string bench_ocsp_good(X509* leaf, X509* issuer, EVP_PKEY* issuer_key) {
    return test::make_ocsp_response(leaf, issuer, issuer, issuer_key);
}

struct BenchWorld {
    test::TestCa root = test::make_test_ca("bench root");
    test::TestCa inter_self = test::make_test_ca("bench intermediate");
    ossl::PKey key = test::make_software_key();
    ossl::X509Ptr leaf =
        test::issue_cert(inter_self, key.get(), "bench leaf", test::CertUsage::server);
    // The intermediate as the root issued it (same key and name as inter_self).
    ossl::X509Ptr inter =
        test::issue_cert(root, inter_self.key.get(), "bench intermediate", test::CertUsage::server);
    std::string leaf_staple = bench_ocsp_good(leaf.get(), inter.get(), inter_self.key.get());
    std::string inter_answer = bench_ocsp_good(inter.get(), root.cert.get(), root.key.get());
    revocation::Checker checker{[] {
        revocation::Settings s;
        s.background_refresh = false;
        return s;
    }()};
    std::vector<X509*> chain{leaf.get(), inter.get(), root.cert.get()};
    BenchWorld() {
        checker.feed_staple(leaf_staple, leaf.get(), inter.get());
        checker.feed_staple(inter_answer, inter.get(), root.cert.get());
    }
};

BenchWorld& bench_world() {
    static BenchWorld w;
    return w;
}

void Revocation_cached(benchmark::State& state) {
    auto& w = bench_world();
    for (auto _ : state) {
        auto v = w.checker.cached(w.chain);
        if (!v || !v->good()) state.SkipWithError("not answered from the cache");
        benchmark::DoNotOptimize(v);
    }
}

void Revocation_staple(benchmark::State& state) {
    auto& w = bench_world();
    for (auto _ : state) {
        auto sv = w.checker.feed_staple(w.leaf_staple, w.leaf.get(), w.inter.get());
        auto v = w.checker.cached(w.chain);
        if (sv.status != revocation::Status::good || !v) state.SkipWithError("staple refused");
        benchmark::DoNotOptimize(v);
    }
}

void Revocation_cert_ids(benchmark::State& state) {
    auto& w = bench_world();
    for (auto _ : state) {
        auto k = revocation::key_hash_hex(w.inter.get());
        auto s = revocation::serial_of(w.leaf.get());
        benchmark::DoNotOptimize(k);
        benchmark::DoNotOptimize(s);
    }
}

}  // namespace

BENCHMARK(Revocation_cached);
BENCHMARK(Revocation_staple);
BENCHMARK(Revocation_cert_ids);
BENCHMARK_MAIN();
