// pkcs11_bench: what the OpenSSL provider costs on top of the token.
//
//   build/default/bench/pkcs11_bench [--benchmark_min_time=2]
//
// Makes a throwaway SoftHSM2 token (softhsm-setup.sh), generates an EC P-256 and an RSA-2048
// key on it, and measures on the same key:
//   Sign/raw_csign      C_SignInit + C_Sign on a pooled session (the floor)
//   Sign/provider       EVP_PKEY_sign through the provider (pre-hashed input, same work)
//   Sign/digest_sign    EVP_DigestSign(SHA-256) through the provider (what TLS does)
//   Sign/pem_digest_sign  the same with a software key of the same type (a file key)
//   Handshake/token     TLS 1.3 client-auth handshakes on loopback, client key on the token
//   Handshake/pem       the same with a software key of the same type loaded from PEM
//
// MTLS_BENCH_TPM=1: the token is a tpm2-pkcs11 one on a software TPM (swtpm behind
// tpm2-abrmd, softhsm-setup/tpm-setup.sh) instead. The TPM's work is done in the swtpm
// process, so the signing and handshake rows then also count tpm_cpu_us: the CPU time swtpm
// and tpm2-abrmd spent per operation. Rows a TPM key cannot do (raw CKM_RSA_PKCS, PKCS#1 v1.5
// over a given digest: see docs/tpm.md) end with that error instead of a figure.
#include <benchmark/benchmark.h>
#include <openssl/pem.h>
#include <time.h>

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <vector>

#include "common/ossl_error.hpp"
#include "pkcs11/provider/provider.hpp"
#include "tests/support/pkcs11_fixture.hpp"
#include "tests/support/softhsm_token.hpp"
#include "tests/support/test_pki.hpp"
#include "tests/support/tls_loopback.hpp"

using namespace mtls;

namespace {

bool use_tpm() {
    const char* v = std::getenv("MTLS_BENCH_TPM");
    return v && *v && std::string(v) != "0";
}

struct World {
    std::optional<test::SoftHsmToken> hsm;
    std::optional<test::TempToken> tpm;
    std::shared_ptr<pkcs11::Token> token;
    std::shared_ptr<pkcs11::ProviderContext> prov;
    pkcs11::KeyInfo ec, rsa;
    test::TestCa ca = test::make_test_ca();
    std::vector<pid_t> tpm_pids;  // swtpm, tpm2-abrmd

    World() {
        pkcs11::TokenOptions o;
        if (use_tpm()) {
            tpm.emplace(test::TempToken::create_tpm("mtls-bench"));
            tpm->use();
            o.module_path = tpm->module;
            o.token_uri = tpm->uri;
            o.pin = pkcs11::PinSource::file(tpm->pin_file);
            for (const char* f : {"swtpm.pid", "abrmd.pid"}) {
                std::ifstream in(tpm->dir.path() / "run" / f);
                pid_t pid = 0;
                if (in >> pid) tpm_pids.push_back(pid);
            }
        } else {
            hsm.emplace(test::SoftHsmToken::create("mtls-bench"));
            o.module_path = hsm->module;
            o.token_uri = hsm->token_uri;
            o.pin = pkcs11::PinSource::file(hsm->pin_file);
        }
        token = pkcs11::Token::open(o);
        prov = std::make_shared<pkcs11::ProviderContext>(token);
        ec = token->generate_key(config::KeyType::ec_p256, "bench-ec");
        rsa = token->generate_key(config::KeyType::rsa_2048, "bench-rsa");
    }
    const pkcs11::KeyInfo& key(int64_t which) const { return which == 0 ? ec : rsa; }
};

World& world() {
    static World w;
    return w;
}

// CPU time (user + system, µs) the TPM's processes have used so far; 0 without a TPM.
double tpm_cpu_us() {
    double total = 0;
    const double tick = static_cast<double>(::sysconf(_SC_CLK_TCK));
    for (pid_t pid : world().tpm_pids) {
        std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
        std::string line;
        std::getline(in, line);
        const auto close = line.rfind(')');
        if (close == std::string::npos) continue;
        std::istringstream rest(line.substr(close + 2));
        std::string field;
        double utime = 0, stime = 0;
        for (int i = 3; i <= 15 && rest >> field; ++i) {
            if (i == 14) utime = std::stod(field);
            if (i == 15) stime = std::stod(field);
        }
        total += (utime + stime) / tick * 1e6;
    }
    return total;
}

// Sets tpm_cpu_us (per iteration) when the token is a TPM.
void count_tpm_cpu(benchmark::State& state, double before) {
    if (world().tpm_pids.empty() || state.iterations() == 0) return;
    state.counters["tpm_cpu_us"] =
        (tpm_cpu_us() - before) / static_cast<double>(state.iterations());
}

const char* type_label(int64_t which) {
    return which == 0 ? "ec_p256" : "rsa_2048";
}

void Sign_raw_csign(benchmark::State& state) {
    auto& w = world();
    const auto& k = w.key(state.range(0));
    unsigned char digest[32] = {1, 2, 3, 4};
    // Same input the provider gives the token: raw digest (EC) or DigestInfo (RSA PKCS#1).
    static const unsigned char kSha256Prefix[] = {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60,
                                                  0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                                                  0x01, 0x05, 0x00, 0x04, 0x20};
    std::string input(reinterpret_cast<const char*>(digest), 32);
    if (state.range(0) == 1)
        input =
            std::string(reinterpret_cast<const char*>(kSha256Prefix), sizeof kSha256Prefix) + input;
    CK_MECHANISM mech{state.range(0) == 0 ? CKM_ECDSA : CKM_RSA_PKCS, nullptr, 0};
    const std::size_t max = state.range(0) == 0 ? 64 : 256;
    const std::span<const unsigned char> in(reinterpret_cast<const unsigned char*>(input.data()),
                                            input.size());
    // Bare Cryptoki on one session of our own: no pool, no OpenSSL.
    CK_FUNCTION_LIST* f = w.token->fn();
    CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
    f->C_OpenSession(w.token->slot(), CKF_SERIAL_SESSION | (state.range(1) ? CKF_RW_SESSION : 0),
                     nullptr, nullptr, &s);
    CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
    CK_ATTRIBUTE tmpl[] = {{CKA_CLASS, &cls, sizeof cls},
                           {CKA_ID, const_cast<char*>(k.id.data()), k.id.size()}};
    CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
    CK_ULONG n = 0;
    f->C_FindObjectsInit(s, tmpl, 2);
    f->C_FindObjects(s, &h, 1, &n);
    f->C_FindObjectsFinal(s);
    unsigned char sig[512];
    for (auto _ : state) {
        CK_ULONG len = max;
        if (f->C_SignInit(s, &mech, h) != CKR_OK ||
            f->C_Sign(s, const_cast<unsigned char*>(in.data()), in.size(), sig, &len) != CKR_OK) {
            state.SkipWithError("C_Sign failed");
            break;
        }
    }
    f->C_CloseSession(s);
    state.SetLabel(type_label(state.range(0)));
    state.counters["sig/s"] =
        benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

// The session pool layer alone (Token::sign): what the provider calls.
void Sign_token_pool(benchmark::State& state) {
    auto& w = world();
    pkcs11::PrivateKeyRef ref(w.key(state.range(0)).id);
    const unsigned char digest[32] = {1, 2, 3, 4};
    CK_MECHANISM mech{CKM_ECDSA, nullptr, 0};
    if (state.range(0) == 1) mech.mechanism = CKM_RSA_PKCS;
    for (auto _ : state)
        benchmark::DoNotOptimize(w.token->sign(ref, mech, digest, state.range(0) == 0 ? 64 : 256));
    state.SetLabel(type_label(state.range(0)));
    state.counters["sig/s"] =
        benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

void Sign_provider(benchmark::State& state) {
    auto& w = world();
    auto key = w.prov->load_private_key(w.key(state.range(0)).id);
    unsigned char digest[32] = {1, 2, 3, 4};
    unsigned char sig[512];
    for (auto _ : state) {
        ossl::PKeyCtx ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, key.get(), nullptr));
        size_t len = sizeof sig;
        if (EVP_PKEY_sign_init(ctx.get()) != 1 ||
            EVP_PKEY_CTX_set_signature_md(ctx.get(), EVP_sha256()) != 1 ||
            EVP_PKEY_sign(ctx.get(), sig, &len, digest, sizeof digest) != 1) {
            state.SkipWithError(ossl::drain_errors().c_str());
            break;
        }
    }
    state.SetLabel(type_label(state.range(0)));
    state.counters["sig/s"] =
        benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

double thread_cpu_us() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) * 1e6 + static_cast<double>(ts.tv_nsec) / 1e3;
}

// Raw C_Sign and the provider alternately on the same key, each timed in thread CPU time:
// all see the same machine load, so their ratios hold even on a busy shared machine.
// Counters, per signature:
//   raw_us          C_SignInit + C_Sign on one session (the floor)
//   provider_us     EVP_PKEY_sign through the provider on an EVP_PKEY_CTX initialised once:
//                   everything the provider adds (OpenSSL's dispatch, the session pool, the
//                   handle cache, the signature encoding) and nothing else
//   overhead_pct    (provider_us - raw_us) / raw_us: the provider's overhead
//   full_us         a new EVP_PKEY_CTX per signature (new, sign_init, set digest, sign, free):
//                   what libssl does once per handshake
//   full_overhead_pct  (full_us - raw_us) / raw_us
//   evp_setup_us    that per-context setup alone (new, init, digest, size query, free) for a
//                   software key of the same type: OpenSSL's own cost, paid by every key
void Sign_paired(benchmark::State& state) {
    auto& w = world();
    const bool ec = state.range(0) == 0;
    const auto& k = w.key(state.range(0));
    auto key = w.prov->load_private_key(k.id);
    CK_FUNCTION_LIST* f = w.token->fn();
    CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
    f->C_OpenSession(w.token->slot(), CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr, &s);
    CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
    CK_ATTRIBUTE tmpl[] = {{CKA_CLASS, &cls, sizeof cls},
                           {CKA_ID, const_cast<char*>(k.id.data()), k.id.size()}};
    CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
    CK_ULONG n = 0;
    f->C_FindObjectsInit(s, tmpl, 2);
    f->C_FindObjects(s, &h, 1, &n);
    f->C_FindObjectsFinal(s);
    unsigned char digest[32] = {1, 2, 3, 4};
    static const unsigned char kSha256Prefix[] = {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60,
                                                  0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                                                  0x01, 0x05, 0x00, 0x04, 0x20};
    std::string input(reinterpret_cast<const char*>(digest), 32);
    if (!ec)
        input =
            std::string(reinterpret_cast<const char*>(kSha256Prefix), sizeof kSha256Prefix) + input;
    CK_MECHANISM mech{ec ? CKM_ECDSA : CKM_RSA_PKCS, nullptr, 0};
    unsigned char sig[512];
    double raw = 0, prov = 0, full = 0, evp = 0;
    auto soft = test::make_software_key(ec ? "EC" : "RSA");
    ossl::PKeyCtx reused(EVP_PKEY_CTX_new_from_pkey(nullptr, key.get(), nullptr));
    if (EVP_PKEY_sign_init(reused.get()) != 1 ||
        EVP_PKEY_CTX_set_signature_md(reused.get(), EVP_sha256()) != 1) {
        state.SkipWithError(ossl::drain_errors().c_str());
        return;
    }
    for (auto _ : state) {
        const double t0 = thread_cpu_us();
        CK_ULONG len = ec ? 64 : 256;
        if (f->C_SignInit(s, &mech, h) != CKR_OK ||
            f->C_Sign(s, reinterpret_cast<unsigned char*>(input.data()), input.size(), sig, &len) !=
                CKR_OK) {
            state.SkipWithError("C_Sign failed");
            break;
        }
        const double t1 = thread_cpu_us();
        size_t rlen = sizeof sig;
        if (EVP_PKEY_sign(reused.get(), sig, &rlen, digest, sizeof digest) != 1) {
            state.SkipWithError(ossl::drain_errors().c_str());
            break;
        }
        const double t1b = thread_cpu_us();
        ossl::PKeyCtx ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, key.get(), nullptr));
        size_t slen = sizeof sig;
        if (EVP_PKEY_sign_init(ctx.get()) != 1 ||
            EVP_PKEY_CTX_set_signature_md(ctx.get(), EVP_sha256()) != 1 ||
            EVP_PKEY_sign(ctx.get(), sig, &slen, digest, sizeof digest) != 1) {
            state.SkipWithError(ossl::drain_errors().c_str());
            break;
        }
        ctx.reset();
        const double t2 = thread_cpu_us();
        // For scale: OpenSSL's own per-signature EVP setup (context, init, digest, size query)
        // with a software key of the same type in the default provider, no signing.
        {
            ossl::PKeyCtx c2(EVP_PKEY_CTX_new_from_pkey(nullptr, soft.get(), nullptr));
            size_t sl = 0;
            EVP_PKEY_sign_init(c2.get());
            EVP_PKEY_CTX_set_signature_md(c2.get(), EVP_sha256());
            EVP_PKEY_sign(c2.get(), nullptr, &sl, digest, sizeof digest);
        }
        const double t3 = thread_cpu_us();
        raw += t1 - t0;
        prov += t1b - t1;
        full += t2 - t1b;
        evp += t3 - t2;
    }
    f->C_CloseSession(s);
    const double it = static_cast<double>(state.iterations());
    state.counters["raw_us"] = raw / it;
    state.counters["provider_us"] = prov / it;
    state.counters["overhead_pct"] = 100.0 * (prov - raw) / raw;
    state.counters["full_us"] = full / it;
    state.counters["full_overhead_pct"] = 100.0 * (full - raw) / raw;
    state.counters["evp_setup_us"] = evp / it;
    state.SetLabel(type_label(state.range(0)));
}

void Sign_digest_sign(benchmark::State& state) {
    auto& w = world();
    auto key = w.prov->load_private_key(w.key(state.range(0)).id);
    const unsigned char msg[64] = {7};
    unsigned char sig[512];
    const double tpm0 = tpm_cpu_us();
    for (auto _ : state) {
        ossl::MdCtx md(EVP_MD_CTX_new());
        size_t len = sizeof sig;
        if (EVP_DigestSignInit_ex(md.get(), nullptr, "SHA256", nullptr, nullptr, key.get(),
                                  nullptr) != 1 ||
            EVP_DigestSign(md.get(), sig, &len, msg, sizeof msg) != 1) {
            state.SkipWithError(ossl::drain_errors().c_str());
            break;
        }
    }
    count_tpm_cpu(state, tpm0);
    state.SetLabel(type_label(state.range(0)));
    state.counters["sig/s"] =
        benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

// The same EVP_DigestSign with a software key of the same type (a file key's cost).
void Sign_pem_digest_sign(benchmark::State& state) {
    auto key = test::make_software_key(state.range(0) == 0 ? "EC" : "RSA");
    const unsigned char msg[64] = {7};
    unsigned char sig[512];
    for (auto _ : state) {
        ossl::MdCtx md(EVP_MD_CTX_new());
        size_t len = sizeof sig;
        if (EVP_DigestSignInit_ex(md.get(), nullptr, "SHA256", nullptr, nullptr, key.get(),
                                  nullptr) != 1 ||
            EVP_DigestSign(md.get(), sig, &len, msg, sizeof msg) != 1) {
            state.SkipWithError(ossl::drain_errors().c_str());
            break;
        }
    }
    state.SetLabel(std::string(type_label(state.range(0))) + " PEM key");
    state.counters["sig/s"] =
        benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

void handshakes(benchmark::State& state, bool on_token) {
    auto& w = world();
    const bool ec = state.range(0) == 0;
    ossl::PKey key;
    if (on_token) {
        key = w.prov->load_private_key(w.key(state.range(0)).id);
    } else {
        // A software key of the same type, round-tripped through PEM as a file-based agent would.
        auto soft = test::make_software_key(ec ? "EC" : "RSA");
        const std::string pem = test::to_pem(soft.get());
        ossl::Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
        key.reset(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
    }
    auto server_key = test::make_software_key("EC");
    auto server_cert =
        test::issue_cert(w.ca, server_key.get(), "localhost", test::CertUsage::server);
    auto client_cert = test::issue_cert(w.ca, key.get(), "bench-client", test::CertUsage::client);
    test::TlsServerOptions o;
    o.cert = server_cert.get();
    o.key = server_key.get();
    o.client_ca = w.ca.cert.get();
    o.min_version = o.max_version = TLS1_3_VERSION;
    o.threads = 1;
    test::TlsServer server(o);
    ossl::SslCtx ctx(SSL_CTX_new(TLS_client_method()));
    SSL_CTX_set_min_proto_version(ctx.get(), TLS1_3_VERSION);
    X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx.get()), w.ca.cert.get());
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
    SSL_CTX_use_certificate(ctx.get(), client_cert.get());
    SSL_CTX_use_PrivateKey(ctx.get(), key.get());
    const double tpm0 = tpm_cpu_us();
    for (auto _ : state) {
        const auto r = test::tls_connect(ctx.get(), server.port());
        if (!r.ok) {
            state.SkipWithError(r.error.c_str());
            break;
        }
    }
    if (on_token) count_tpm_cpu(state, tpm0);
    state.SetLabel(std::string(type_label(state.range(0))) +
                   (on_token ? " token key" : " PEM key"));
    state.counters["handshakes/s"] =
        benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

void Handshake_token(benchmark::State& state) {
    handshakes(state, true);
}
void Handshake_pem(benchmark::State& state) {
    handshakes(state, false);
}

// The machine is shared: run with --benchmark_repetitions=N and compare the minimum (the run
// least disturbed by other load), reported as the "_min" aggregate.
double min_of(const std::vector<double>& v) {
    return *std::min_element(v.begin(), v.end());
}

BENCHMARK(Sign_raw_csign)
    ->Args({0, 0})
    ->Args({1, 0})
    ->Args({0, 1})
    ->UseRealTime()
    ->ComputeStatistics("min", min_of);
BENCHMARK(Sign_paired)->Arg(0)->Arg(1)->UseRealTime()->ComputeStatistics("min", min_of);
BENCHMARK(Sign_token_pool)->Arg(0)->Arg(1)->UseRealTime()->ComputeStatistics("min", min_of);
BENCHMARK(Sign_provider)->Arg(0)->Arg(1)->UseRealTime()->ComputeStatistics("min", min_of);
BENCHMARK(Sign_digest_sign)->Arg(0)->Arg(1)->UseRealTime()->ComputeStatistics("min", min_of);
BENCHMARK(Sign_pem_digest_sign)->Arg(0)->Arg(1)->UseRealTime()->ComputeStatistics("min", min_of);
BENCHMARK(Handshake_token)->Arg(0)->Arg(1)->UseRealTime()->ComputeStatistics("min", min_of);
BENCHMARK(Handshake_pem)->Arg(0)->Arg(1)->UseRealTime()->ComputeStatistics("min", min_of);

}  // namespace

BENCHMARK_MAIN();
