#include "agent/renewal/renewer.hpp"

#include "agent/renewal/crash_point.hpp"
#include "agent/renewal/instance.hpp"
#include "common/atomic_file.hpp"
#include "common/encoding.hpp"
#include "common/log.hpp"
#include "common/ossl_error.hpp"
#include "common/x509_text.hpp"
#include "est/client.hpp"
#include "est/key_choice.hpp"

#include <openssl/err.h>
#include <openssl/pem.h>

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>

namespace mtls::renewal {
namespace {

std::int64_t unix_now() {
    return std::chrono::duration_cast<std::chrono::seconds>(Clock::now().time_since_epoch())
        .count();
}

std::vector<ossl::X509Ptr> certs_from_pem(const std::string& pem) {
    std::vector<ossl::X509Ptr> out;
    ossl::Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    while (X509* c = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) out.emplace_back(c);
    ERR_clear_error();  // the end of the data reads as an error
    return out;
}

std::vector<X509*> raw(const std::vector<ossl::X509Ptr>& v) {
    std::vector<X509*> r;
    for (const auto& c : v) r.push_back(c.get());
    return r;
}

// "<prefix>-<instance>-<time>-<last 2 bytes of the id>": for people reading the token; what
// makes a key ours is its CKA_ID (instance.hpp).
std::string key_label(const std::string& prefix, const Instance& instance,
                      const std::string& key_id) {
    std::time_t t = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
    return prefix + "-" + instance.hex() + "-" + buf + "-" +
           encoding::hex(std::string_view(key_id).substr(key_id.size() - 2));
}

bool has_label_prefix(const std::string& label, const std::string& prefix) {
    return label.size() > prefix.size() + 1 && label.compare(0, prefix.size(), prefix) == 0 &&
           label[prefix.size()] == '-';
}

struct StepLog {
    Outcome& out;
    std::string_view phase;  // for crash_point(): "startup", "enroll", "renew"
    void ok(std::string step, std::string detail = {}) {
        log::info("renewal.step", {{"step", step}, {"detail", detail}});
        crash_point(phase, step);
        out.steps.push_back({std::move(step), "ok", std::move(detail)});
    }
    void failed(std::string step, std::string detail) {
        log::error("renewal.step_failed", {{"step", step}, {"error", detail}});
        out.steps.push_back({std::move(step), "failed", detail});
        out.ok = false;
        out.message = std::move(detail);
    }
};

// The EST client for one enrollment or renewal and the CA certificates it trusts. After
// first contact the CA certificates from /cacerts are the trust anchor (RFC 7030 §4.1.3),
// unless an explicit trust anchor file is configured; without stored ones they are fetched
// now (over the configured trust) and kept in `st`.
struct EstContact {
    est::Client client;
    std::vector<ossl::X509Ptr> ca;
};

EstContact open_est(State& st, const config::Config& cfg, StepLog& steps) {
    auto settings = est::settings_from_config(cfg.est);
    auto stored_ca = certs_from_pem(st.est_ca_pem);
    if (cfg.est.trust_anchor_file.empty() && !stored_ca.empty()) {
        // The pin stays accepted beside them: many EST servers (testrfc7030.com among them)
        // present a TLS certificate from another CA (a public one) than the certificates
        // they enroll for, which /cacerts returns.
        auto pin = std::move(settings.trust.pinned_sha256);
        settings.trust = http::ServerTrust::from_certs(raw(stored_ca));
        settings.trust.pinned_sha256 = std::move(pin);
    }
    est::Client client(settings);
    if (stored_ca.empty()) {
        stored_ca = client.cacerts();
        st.est_ca_pem.clear();
        for (const auto& c : stored_ca) st.est_ca_pem += x509text::pem(c.get());
        steps.ok("cacerts", std::to_string(stored_ca.size()) + " CA certificate(s)");
    }
    return {std::move(client), std::move(stored_ca)};
}

// A persisted chain of the leaf alone (written before the chain was built from /cacerts)
// is completed from the stored CA certificates, so partners that trust only the root accept
// it from the first handshake after an upgrade. Empty when there is nothing to add.
std::vector<ossl::X509Ptr> completed_chain(X509* leaf, const State& st) {
    auto stored_ca = certs_from_pem(st.est_ca_pem);
    if (stored_ca.empty()) return {};
    try {
        auto chain = est::build_chain(leaf, {}, raw(stored_ca));
        if (!chain.empty()) log::info("renewal.chain_completed", {{"intermediates", chain.size()}});
        return chain;
    } catch (const std::exception& e) {
        log::warn("renewal.chain_not_completed", {{"error", e.what()}});
        return {};
    }
}

// The key type to generate, decided before a key is made: [key] and what the EST server's
// csrattrs ask for (fetched on its own connection; the enroll fetches them again on its
// connection, for PoP linking). Throws est::Error(config) when [key] does not allow what the
// server asks for. `csrattrs` receives what the server asked for.
config::KeyType key_type_for(est::Client& client, const est::Credentials& creds,
                             const config::KeyPolicy& policy, est::CsrAttributes& csrattrs,
                             StepLog& steps) {
    csrattrs = {};
    if (client.settings().fetch_csrattrs) {
        try {
            csrattrs = client.csrattrs(creds);
        } catch (const est::Error& e) {
            if (e.kind() == est::Error::Kind::transport ||
                e.kind() == est::Error::Kind::untrusted_server ||
                e.kind() == est::Error::Kind::config)
                throw;
            log::warn("renewal.csrattrs_ignored", {{"error", e.what()}});
        }
    }
    const auto type = est::choose_key_type(csrattrs, policy);
    if (!csrattrs.keys.empty() || policy.from_server || !policy.types.empty())
        steps.ok("choose_key_type",
                 std::string(config::to_string(type)) +
                     (csrattrs.keys.empty()
                          ? " (the EST server asks for no key type)"
                          : " (the EST server asks for " + csrattrs.keys.front().describe() +
                                (csrattrs.keys.size() > 1 ? ", …)" : ")")));
    return type;
}

// "" when the bootstrap credentials of [est] can be read; else what is missing (for a fresh
// enrollment's error: files are often removed after the first enrollment).
std::string missing_bootstrap_credentials(const config::Est& est) {
    auto unreadable = [](const std::string& key, const std::string& path) -> std::string {
        if (path.empty()) return key + " is not set";
        if (::access(path.c_str(), R_OK) != 0)
            return key + " " + path + " cannot be read (" + std::strerror(errno) + ")";
        return {};
    };
    if (est.auth == config::Est::Auth::bootstrap_cert)
        return unreadable("est.bootstrap_cert", est.bootstrap_cert_file);
    return unreadable("est.basic_credentials", est.basic_credentials_file);
}

}  // namespace

Renewer::Renewer(config::Config cfg, std::shared_ptr<pkcs11::ProviderContext> provider,
                 identity::IdentityStore& identities, AttemptHook on_attempt)
    : cfg_(std::move(cfg)),
      provider_(std::move(provider)),
      identities_(identities),
      on_attempt_(std::move(on_attempt)),
      store_(cfg_.state_dir),
      backoff_(cfg_.renewal.backoff_initial, cfg_.renewal.backoff_max) {}

Renewer::~Renewer() {
    stop();
}

void Renewer::update_config(const config::Config& cfg) {
    std::lock_guard lock(mu_);
    cfg_ = cfg;
}

Status Renewer::status() const {
    std::lock_guard lock(mu_);
    return status_;
}

std::string Renewer::est_ca_pem() const {
    std::lock_guard lock(mu_);
    return state_ ? state_->est_ca_pem : std::string();
}

Outcome Renewer::start_up() {
    Outcome out;
    StepLog steps{out, "startup"};
    auto token = provider_->token();
    std::string prefix;
    {
        std::lock_guard lock(mu_);
        prefix = cfg_.key.label_prefix;
    }

    // 1. The persisted state. A corrupt state file is never guessed around: keys on the
    //    token are left alone (no orphan cleanup) and a fresh identity is enrolled.
    State st;
    bool trust_state = true;
    try {
        if (auto loaded = store_.load()) st = std::move(*loaded);
        steps.ok("load_state", store_.path().string());
    } catch (const StateError& e) {
        trust_state = false;
        log::error("renewal.state_unreadable",
                   {{"error", e.what()}, {"action", "enrolling anew; token keys left untouched"}});
        out.steps.push_back({"load_state", "failed", e.what()});
    }

    // 2. Who we are on the token (instance.hpp), known before any key is generated. A state
    //    file naming another instance was not written by this agent: destroy nothing.
    Instance instance = Instance::load_or_create(store_.path().parent_path(), st.instance);
    if (!st.instance.empty() && st.instance != instance.hex()) {
        log::error("renewal.instance_mismatch",
                   {{"state", st.instance},
                    {"instance_file", instance.hex()},
                    {"action",
                     "token objects left untouched; check that the state directory "
                     "is this agent's own"}});
        trust_state = false;
    }
    st.instance = instance.hex();
    {
        std::lock_guard lock(mu_);
        instance_ = instance;
        persist_outcome_ = trust_state;
        // The last attempt's outcome, as before the restart.
        if (trust_state && st.last_renewal) {
            status_.last_at = Clock::time_point(std::chrono::seconds(st.last_renewal->at));
            status_.last_result = st.last_renewal->ok ? "ok" : st.last_renewal->message;
            status_.consecutive_failures =
                st.last_renewal->ok ? 0 : st.last_renewal->consecutive_failures;
        }
        if (trust_state && st.last_compromise)
            status_.last_compromise =
                Status::Compromise{Clock::time_point(std::chrono::seconds(st.last_compromise->at)),
                                   st.last_compromise->trigger, st.last_compromise->reason};
    }

    // 3. Reconcile with the token: forget keys the token no longer has, destroy objects of
    //    this instance that nothing references (an interrupted generation's, public keys and
    //    incomplete objects included), and only those.
    auto keys = token->list_keys();
    auto present = [&](const std::string& id_hex) {
        return std::any_of(keys.begin(), keys.end(),
                           [&](const pkcs11::KeyInfo& k) { return k.id_hex() == id_hex; });
    };
    bool forgot = false;
    if (trust_state) finish_compromise(st, forgot);
    if (st.current_key && !present(st.current_key->id_hex)) {
        log::warn("renewal.current_key_missing", {{"key_id", st.current_key->id_hex}});
        st.current_key.reset();
        st.chain_pem.clear();
        forgot = true;
    }
    if (std::erase_if(st.retiring, [&](const RetiringKey& r) { return !present(r.key.id_hex); }))
        forgot = true;  // e.g. a crash between destroying a retired key and saving the state
    if (trust_state && forgot) {
        // The file says what the token holds again (it is what operators and tests read).
        store_.save(st);
        steps.ok("save_reconciled_state", store_.path().string());
    }
    if (trust_state) {
        auto refs = st.referenced_ids();
        auto referenced = [&](const std::string& id_hex) {
            return std::find(refs.begin(), refs.end(), id_hex) != refs.end();
        };
        std::vector<std::string> orphans;  // raw CKA_IDs
        if (st.pending_key && !referenced(*st.pending_key))
            orphans.push_back(encoding::hex_decode(*st.pending_key).value_or(""));
        for (const auto& o : token->list_objects())
            if (instance.owns(o.id) && !referenced(encoding::hex(o.id))) orphans.push_back(o.id);
        std::sort(orphans.begin(), orphans.end());
        orphans.erase(std::unique(orphans.begin(), orphans.end()), orphans.end());
        for (const auto& id : orphans) {
            if (id.empty()) continue;
            const auto n = token->destroy_key(id);
            if (n == 0) continue;  // the pending key was never made
            log::warn("renewal.orphan_key_destroyed",
                      {{"key_id", encoding::hex(id)}, {"objects", n}});
            steps.ok("destroy_orphan", encoding::hex(id));
        }
        if (st.pending_key || instance.created()) {
            st.pending_key.reset();
            store_.save(st);
        }
        // Keys that look like ours by their label but were not made by this instance: another
        // agent's on a shared token, or made before keys carried an instance id. Never ours
        // to destroy; said once, for operators.
        for (const auto& k : keys)
            if (has_label_prefix(k.label, prefix) && !instance.owns(k.id) &&
                !referenced(k.id_hex()))
                log::info("renewal.unowned_key_left_alone",
                          {{"key_id", k.id_hex()},
                           {"label", k.label},
                           {"why", "not made by this agent (instance " + instance.hex() +
                                       "): another agent's, or from an older version; delete "
                                       "it with pkcs11-tool if nothing uses it"}});
    }

    // 4. A still-valid persisted identity is published as is.
    identity::IdentityPtr id;
    if (st.current_key) {
        try {
            auto certs = certs_from_pem(st.chain_pem);
            if (certs.empty()) throw std::runtime_error("no certificate in the persisted chain");
            auto leaf = std::move(certs.front());
            certs.erase(certs.begin());
            if (certs.empty()) certs = completed_chain(leaf.get(), st);
            auto key_raw = encoding::hex_decode(st.current_key->id_hex).value_or("");
            id = identity::Identity::create(std::move(leaf), std::move(certs),
                                            provider_->load_private_key(key_raw),
                                            st.current_key->id_hex, identities_.next_generation());
            if (!id->valid_at(Clock::now())) {
                log::warn("renewal.persisted_identity_expired", {{"subject", id->subject()}});
                id.reset();
            }
        } catch (const std::exception& e) {
            log::error("renewal.persisted_identity_unusable", {{"error", e.what()}});
            id.reset();
        }
    }
    {
        std::lock_guard lock(mu_);
        state_ = st;
        if (st.current_key) {
            status_.key_type = st.current_key->type;
            status_.key_label = st.current_key->label;
        }
    }
    if (id) {
        identities_.publish(id);
        steps.ok("publish", "persisted identity " + id->subject());
        out.ok = true;
        out.message = "using the persisted identity";
        std::lock_guard lock(mu_);
        // A renewal that failed before the restart is retried soon, not at the next
        // scheduled time.
        schedule_next(id, status_.consecutive_failures > 0);
        return out;
    }

    // 5. No usable identity: enroll now (failure is not fatal; the loop retries).
    auto enrolled = attempt(false, {});
    out.steps.insert(out.steps.end(), enrolled.steps.begin(), enrolled.steps.end());
    out.ok = enrolled.ok;
    out.message = enrolled.message;
    return out;
}

Outcome Renewer::attempt(bool force_rekey, std::stop_token stop, bool fresh) {
    Outcome out;
    State st;
    bool rekey;
    {
        std::lock_guard lock(mu_);
        st = state_.value_or(State{});
        rekey = force_rekey || cfg_.key.rekey_on_renew;
        ++status_.attempts;
    }
    auto current = identities_.current();
    bool usable = !fresh && current && current->valid_at(Clock::now()) && st.current_key &&
                  identities_.usable(*current);
    try {
        out = usable ? renew_with(st, current, rekey, stop) : enroll_fresh(st, stop);
    } catch (const std::exception& e) {
        out.ok = false;
        out.message = e.what();
        out.steps.push_back({"renew", "failed", e.what()});
    }
    auto now_id = identities_.current();
    long long retry_in_s = -1;
    {
        std::lock_guard lock(mu_);
        status_.last_at = Clock::now();
        if (out.ok) {
            status_.last_result = "ok";
            status_.consecutive_failures = 0;
            backoff_.reset();
            if (st.current_key) {
                status_.key_type = st.current_key->type;
                status_.key_label = st.current_key->label;
            }
        } else {
            status_.last_result = out.message;
            ++status_.failures;
            ++status_.consecutive_failures;
        }
        schedule_next(now_id, !out.ok);
        if (status_.next_at)
            retry_in_s =
                std::chrono::duration_cast<std::chrono::seconds>(*status_.next_at - Clock::now())
                    .count();
    }
    remember_outcome(out);
    if (!out.ok) {
        // The message says what failed and what to check (est::Error); when the next try is.
        log::error("renewal.failed", {{"error", out.message}, {"retry_in_s", retry_in_s}});
        // Never look usable with an expired certificate: requests get 503 no_identity.
        if (now_id && !now_id->valid_at(Clock::now())) {
            identities_.clear();
            now_id.reset();
        }
    }
    if (on_attempt_) on_attempt_(out, now_id);
    return out;
}

Outcome Renewer::enroll_fresh(State& st, std::stop_token stop) {
    Outcome out;
    StepLog steps{out, "enroll"};
    config::Config cfg;
    {
        std::lock_guard lock(mu_);
        cfg = cfg_;
    }
    auto token = provider_->token();
    if (auto missing = missing_bootstrap_credentials(cfg.est); !missing.empty())
        throw std::runtime_error(
            "no bootstrap credentials to enroll a new key: " + missing +
            ". A new identity needs the EST enrollment credentials of a first start (a revoked "
            "or compromised certificate cannot authenticate a re-enrollment); put them back "
            "(est.basic_credentials, or est.auth = \"bootstrap-cert\" with est.bootstrap_cert "
            "and est.bootstrap_key) — the agent retries by itself");
    auto [client, stored_ca] = open_est(st, cfg, steps);

    // Bootstrap credentials.
    std::optional<http::BasicAuth> basic;
    est::Credentials creds = est::credentials_from_config(cfg.est, "simpleenroll", basic);
    if (cfg.est.auth == config::Est::Auth::bootstrap_cert) {
        auto certs = certs_from_pem(files::read_all(cfg.est.bootstrap_cert_file));
        if (certs.empty())
            throw std::runtime_error("est.bootstrap_cert " + cfg.est.bootstrap_cert_file +
                                     " holds no PEM certificate");
        auto bkey = provider_->load_key(cfg.est.bootstrap_key_uri);
        std::vector<X509*> chain;
        for (std::size_t i = 1; i < certs.size(); ++i) chain.push_back(certs[i].get());
        creds.tls = http::ClientIdentity::make(certs[0].get(), chain, bkey.get());
    }

    est::CsrAttributes asked;
    const auto type = key_type_for(client, creds, cfg.key, asked, steps);
    const auto new_id = record_key_intent(st);
    steps.ok("key_intent", encoding::hex(new_id));
    std::optional<pkcs11::KeyInfo> made;
    try {
        made =
            token->generate_key(type, key_label(cfg.key.label_prefix, instance(), new_id), new_id);
    } catch (...) {
        drop_key_intent(st, new_id);
        throw;
    }
    const auto& info = *made;
    steps.ok("generate_key", std::string(config::to_string(type)) + " " + info.label);
    try {
        auto key = provider_->load_private_key(info.id);
        auto req = est::csr_request(cfg.est);
        auto res = client.simpleenroll(req, key.get(), creds, raw(stored_ca), stop);
        steps.ok("enroll", "simpleenroll, " + std::to_string(res.attempts) + " request(s)" +
                               (res.pop_linked ? ", PoP " + res.binding_type : ""));
        std::string chain_pem = x509text::pem(res.issued.cert.get());
        for (const auto& c : res.issued.chain) chain_pem += x509text::pem(c.get());
        auto id = identity::Identity::create(std::move(res.issued.cert),
                                             std::move(res.issued.chain), std::move(key),
                                             info.id_hex(), identities_.next_generation());
        steps.ok("verify", id->subject());
        if (st.current_key && st.current_key->id_hex == missing_key()) {
            // The key that vanished from the token: nothing to wait for, nothing uses it.
            st.retiring.push_back({*st.current_key, unix_now()});
        }
        st.current_key = KeyRef{info.id_hex(), info.label, config::to_string(info.type)};
        st.chain_pem = chain_pem;
        st.pending_key.reset();
        store_.save(st);
        steps.ok("persist", store_.path().string());
        {
            std::lock_guard lock(mu_);
            state_ = st;
        }
        identities_.publish(id);
        {
            std::lock_guard lock(mu_);
            missing_key_.clear();
            status_.key_problem.clear();
        }
        steps.ok("publish", "generation " + std::to_string(id->generation()));
        out.ok = true;
        out.message = "enrolled " + id->subject();
    } catch (...) {
        token->destroy_key(info.id);  // never referenced by any state
        drop_key_intent(st, info.id);
        throw;
    }
    return out;
}

Outcome Renewer::renew_with(State& st, const identity::IdentityPtr& current, bool rekey,
                            std::stop_token stop) {
    Outcome out;
    StepLog steps{out, "renew"};
    config::Config cfg;
    {
        std::lock_guard lock(mu_);
        cfg = cfg_;
    }
    auto token = provider_->token();
    // The current key must still be on the token: otherwise the TLS handshake or the CSR
    // would fail with a misleading reason. Gone: a new enrollment (key_gone()).
    const auto current_raw = encoding::hex_decode(st.current_key->id_hex).value_or("");
    if (!token->find_key(current_raw)) {
        key_gone(current_raw);
        throw std::runtime_error("the current key (id " + st.current_key->id_hex +
                                 ") is missing on " + token->description() +
                                 "; enrolling a new key with the bootstrap credentials");
    }
    auto [client, stored_ca] = open_est(st, cfg, steps);
    std::vector<X509*> cur_chain;
    for (const auto& c : current->chain()) cur_chain.push_back(c.get());
    // The current certificate, and est.basic_credentials for a server that also asks for
    // HTTP authentication (RFC 7030 §3.2.3): offered only in answer to its challenge.
    std::optional<http::BasicAuth> basic;
    est::Credentials creds = est::credentials_from_config(cfg.est, "simplereenroll", basic);
    creds.tls = http::ClientIdentity::make(current->leaf(), cur_chain, current->key());

    est::CsrAttributes asked;
    const auto type = key_type_for(client, creds, cfg.key, asked, steps);
    if (!rekey) {
        // Renewing for the same key: unless the server now asks for another key type.
        auto current_type = est::key_type_from_name(st.current_key->type);
        if (current_type && !est::key_type_satisfies(asked, *current_type)) {
            log::info("renewal.rekey_for_csrattrs",
                      {{"current", st.current_key->type}, {"new", config::to_string(type)}});
            rekey = true;
        }
    }

    std::optional<pkcs11::KeyInfo> fresh;
    KeyRef new_ref = *st.current_key;
    ossl::PKey key;
    std::string new_id;
    if (rekey) {
        new_id = record_key_intent(st);
        steps.ok("key_intent", encoding::hex(new_id));
        try {
            fresh = token->generate_key(type, key_label(cfg.key.label_prefix, instance(), new_id),
                                        new_id);
        } catch (...) {
            drop_key_intent(st, new_id);
            throw;
        }
        steps.ok("generate_key", std::string(config::to_string(type)) + " " + fresh->label);
        new_ref = KeyRef{fresh->id_hex(), fresh->label, config::to_string(type)};
    }
    try {
        key = provider_->load_private_key(encoding::hex_decode(new_ref.id_hex).value_or(""));
        auto res = client.simplereenroll(current->leaf(), key.get(), creds, raw(stored_ca), stop);
        steps.ok("enroll", "simplereenroll, " + std::to_string(res.attempts) + " request(s)");
        std::string chain_pem = x509text::pem(res.issued.cert.get());
        for (const auto& c : res.issued.chain) chain_pem += x509text::pem(c.get());
        auto id = identity::Identity::create(std::move(res.issued.cert),
                                             std::move(res.issued.chain), std::move(key),
                                             new_ref.id_hex, identities_.next_generation());
        steps.ok("verify", id->subject());
        if (rekey && st.current_key) {
            st.retiring.push_back({*st.current_key, unix_now() + cfg.key.retire_grace.count()});
            if (current) retired_identities_[st.current_key->id_hex] = current;
        }
        st.current_key = new_ref;
        st.chain_pem = chain_pem;
        st.pending_key.reset();
        store_.save(st);
        steps.ok("persist", store_.path().string());
        {
            std::lock_guard lock(mu_);
            state_ = st;
        }
        identities_.publish(id);
        steps.ok("publish", "generation " + std::to_string(id->generation()));
        if (rekey)
            steps.ok("retire_old_key",
                     "after " + std::to_string(cfg.key.retire_grace.count()) + " s");
        out.ok = true;
        out.message = (rekey ? "rotated to a new key: " : "renewed: ") + id->subject();
    } catch (...) {
        if (fresh) {
            token->destroy_key(fresh->id);
            drop_key_intent(st, fresh->id);
        }
        throw;
    }
    return out;
}

const Instance& Renewer::instance() const {
    std::lock_guard lock(mu_);
    if (!instance_) throw std::logic_error("Renewer: start_up() has not run");
    return *instance_;  // set once in start_up(), before the renewer thread starts
}

std::string Renewer::missing_key() const {
    std::lock_guard lock(mu_);
    return missing_key_;
}

void Renewer::remember_outcome(const Outcome& out) {
    State st;
    {
        std::lock_guard lock(mu_);
        if (!state_ || !persist_outcome_) return;
        st = *state_;
        std::string message = out.ok ? "ok" : out.message;
        if (message.size() > 1000) message.resize(1000);
        st.last_renewal =
            LastRenewal{unix_now(), out.ok, std::move(message), status_.consecutive_failures};
    }
    try {
        store_.save(st);
        std::lock_guard lock(mu_);
        state_ = st;
    } catch (const std::exception& e) {
        log::warn("renewal.outcome_not_saved", {{"error", e.what()}});
    }
}

std::string Renewer::record_key_intent(State& st) {
    std::string id = instance().new_key_id();
    st.pending_key = encoding::hex(id);
    store_.save(st);
    {
        std::lock_guard lock(mu_);
        state_ = st;
        persist_outcome_ = true;
    }
    return id;
}

void Renewer::drop_key_intent(State& st, const std::string& id) noexcept {
    try {
        if (!st.pending_key || *st.pending_key != encoding::hex(id)) return;
        st.pending_key.reset();
        store_.save(st);
        std::lock_guard lock(mu_);
        state_ = st;
    } catch (const std::exception& e) {
        // The next start-up removes the key by this id.
        log::warn("renewal.key_intent_not_cleared", {{"error", e.what()}});
    }
}

void Renewer::key_gone(const std::string& key_id) {
    const auto hex = encoding::hex(key_id);
    std::lock_guard lock(mu_);
    if (!state_ || !state_->current_key || state_->current_key->id_hex != hex) return;
    if (missing_key_ == hex) return;  // said once
    missing_key_ = hex;
    status_.key_problem = "the current key is missing on the token";
    log::error("renewal.current_key_vanished",
               {{"key_id", hex},
                {"error",
                 "a signature needed the current private key and the token no longer "
                 "has it (destroyed out of band, or the token was replaced)"},
                {"action", "enrolling a new key with the bootstrap credentials"}});
    reenroll_ = true;
    cv_.notify_all();
}

void Renewer::retire_due(State& st) {
    auto now = unix_now();
    bool changed = false;
    std::int64_t grace = 0;
    {
        std::lock_guard lock(mu_);
        grace = cfg_.key.retire_grace.count();
    }
    retire_postponed_ = false;
    auto token = provider_->token();
    for (auto it = st.retiring.begin(); it != st.retiring.end();) {
        if (it->destroy_after > now) {
            ++it;
            continue;
        }
        auto retry = retire_retry_.find(it->key.id_hex);
        if (retry != retire_retry_.end() && retry->second.at > Clock::now()) {
            ++it;
            continue;
        }
        // Still used by a connection (or a request about to open one)? Wait for it to let go,
        // up to one more grace period: a handshake with a destroyed key would fail.
        if (auto held = retired_identities_.find(it->key.id_hex);
            held != retired_identities_.end()) {
            if (!held->second.expired() && now < it->destroy_after + grace) {
                retire_postponed_ = true;
                ++it;
                continue;
            }
            if (!held->second.expired())
                log::warn("renewal.retire_while_in_use",
                          {{"key_id", it->key.id_hex}, {"waited_s", now - it->destroy_after}});
            retired_identities_.erase(held);
        }
        try {
            token->destroy_key(encoding::hex_decode(it->key.id_hex).value_or(""));
            log::info("renewal.key_retired",
                      {{"key_id", it->key.id_hex}, {"label", it->key.label}});
            crash_point("retire", "destroy_key");
            if (retry != retire_retry_.end()) retire_retry_.erase(retry);
            it = st.retiring.erase(it);
            changed = true;
        } catch (const std::exception& e) {
            // Asked again later, not on the loop's next turn: the entry's time has passed,
            // and without a later one the renewer thread would call the token in a loop.
            constexpr std::chrono::seconds kFirst{2}, kMost{300};
            auto& r = retire_retry_[it->key.id_hex];
            r.delay = r.delay.count() == 0 ? kFirst : std::min(r.delay * 2, kMost);
            r.at = Clock::now() + r.delay;
            log::error(
                "renewal.retire_failed",
                {{"key_id", it->key.id_hex}, {"error", e.what()}, {"retry_in_s", r.delay.count()}});
            ++it;
        }
    }
    if (changed) {
        store_.save(st);
        std::lock_guard lock(mu_);
        state_ = st;
    }
}

// Caller holds mu_.
void Renewer::schedule_next(const identity::IdentityPtr& id, bool failed) {
    if (failed || !id) {
        status_.next_at = Clock::now() + backoff_.next(rng_);
        return;
    }
    status_.next_at = renewal_time(id->not_before(), id->not_after(), cfg_.renewal.at_fraction,
                                   cfg_.renewal.jitter, rng_);
}

void Renewer::request(Kind kind, Done done) {
    {
        std::lock_guard lock(mu_);
        queue_.push_back(Job{kind, std::move(done), false, {}, {}, {}, {}});
    }
    cv_.notify_all();
}

void Renewer::compromised(std::string trigger, std::string reason, std::string problem,
                          Done destroyed, Done done) {
    {
        std::lock_guard lock(mu_);
        status_.key_problem = problem;
        status_.last_compromise = Status::Compromise{Clock::now(), trigger, reason};
    }
    // From here on no request uses the old identity (the daemon's identity listener cuts its
    // connections and drops its tokens).
    auto burnt = identities_.burn(problem);
    log::error("renewal.compromised",
               {{"trigger", trigger},
                {"reason", reason},
                {"key_id", burnt ? burnt->key_id() : std::string("-")},
                {"action",
                 "identity dropped; destroying the key and enrolling a new one with the "
                 "bootstrap credentials"}});
    {
        std::lock_guard lock(mu_);
        // Before anything else queued: a renewal would re-enroll with the burnt certificate.
        queue_.push_front(Job{Kind::rotate, std::move(done), true, std::move(trigger),
                              std::move(reason), burnt ? burnt->key_id() : std::string(),
                              std::move(destroyed)});
    }
    cv_.notify_all();
}

void Renewer::finish_compromise(State& st, bool& forgot) {
    if (!st.last_compromise || !st.last_compromise->destroy_key) return;
    const std::string hex = *st.last_compromise->destroy_key;
    if (st.current_key && st.current_key->id_hex == hex) {
        st.current_key.reset();
        st.chain_pem.clear();
    }
    std::erase_if(st.retiring, [&](const RetiringKey& r) { return r.key.id_hex == hex; });
    const auto n = provider_->token()->destroy_key(encoding::hex_decode(hex).value_or(""));
    log::warn("renewal.compromised_key_destroyed",
              {{"key_id", hex}, {"objects", n}, {"when", "start-up, after an interruption"}});
    st.last_compromise->destroy_key.reset();
    forgot = true;  // saved with the reconciled state
}

Outcome Renewer::replace_compromised(const Job& job, std::stop_token stop) {
    Outcome out;
    StepLog steps{out, "compromised"};
    State st;
    {
        std::lock_guard lock(mu_);
        st = state_.value_or(State{});
    }
    // The burnt identity's key, and the state's current key unless a usable identity serves
    // with it (published after the burn: a renewal that was under way, or an earlier
    // compromised job's enrollment) — that one is kept and nothing is enrolled.
    const auto serving = identities_.current();
    const bool in_use = serving && identities_.usable(*serving) && st.current_key &&
                        serving->key_id() == st.current_key->id_hex &&
                        st.current_key->id_hex != job.burnt_key;
    std::vector<std::string> burn;
    if (!job.burnt_key.empty()) burn.push_back(job.burnt_key);
    if (st.current_key && st.current_key->id_hex != job.burnt_key && !in_use)
        burn.push_back(st.current_key->id_hex);
    try {
        // 1. The intent, durable: a restart never publishes these keys again.
        if (!in_use) {
            st.current_key.reset();
            st.chain_pem.clear();
        }
        std::string reason = job.reason;
        if (reason.size() > 1000) reason.resize(1000);
        st.last_compromise = Compromise{unix_now(), job.trigger, reason, std::nullopt};
        if (!burn.empty()) st.last_compromise->destroy_key = burn.front();
        for (const auto& hex : burn) {
            std::erase_if(st.retiring, [&](const RetiringKey& r) { return r.key.id_hex == hex; });
            retired_identities_.erase(hex);
        }
        // A second burnt key (rare) waits in retiring, due now, should the first step fail.
        for (std::size_t i = 1; i < burn.size(); ++i)
            st.retiring.push_back({KeyRef{burn[i], "", ""}, 0});
        store_.save(st);
        {
            std::lock_guard lock(mu_);
            state_ = st;
            persist_outcome_ = true;
        }
        steps.ok("persist_intent", burn.empty() ? "no key to destroy" : "key " + burn.front());
        // 2. The keys go from the token, at once (no grace: nothing may use them).
        auto token = provider_->token();
        for (const auto& hex : burn) {
            const auto n = token->destroy_key(encoding::hex_decode(hex).value_or(""));
            log::warn("renewal.compromised_key_destroyed",
                      {{"key_id", hex}, {"objects", n}, {"when", "at once"}});
            steps.ok("destroy_key", hex + " (" + std::to_string(n) + " object(s))");
        }
        // 3. Nothing left to destroy.
        st.last_compromise->destroy_key.reset();
        std::erase_if(st.retiring, [&](const RetiringKey& r) {
            return std::find(burn.begin(), burn.end(), r.key.id_hex) != burn.end();
        });
        store_.save(st);
        {
            std::lock_guard lock(mu_);
            state_ = st;
        }
        steps.ok("persist", store_.path().string());
    } catch (const std::exception& e) {
        // The identity stays burnt; retire_due() and the next start retry the destruction.
        if (st.last_compromise && st.last_compromise->destroy_key) {
            st.retiring.push_back({KeyRef{*st.last_compromise->destroy_key, "", ""}, 0});
            try {
                store_.save(st);
                std::lock_guard lock(mu_);
                state_ = st;
            } catch (const std::exception& se) {
                log::warn("renewal.outcome_not_saved", {{"error", se.what()}});
            }
        }
        steps.failed("destroy_key", std::string("could not destroy the compromised key: ") +
                                        e.what() + "; it is not used any more");
        {
            std::lock_guard lock(mu_);
            ++status_.attempts;
            ++status_.failures;
            ++status_.consecutive_failures;
            status_.last_at = Clock::now();
            status_.last_result = out.message;
            status_.next_at = Clock::now() + backoff_.next(rng_);
        }
        if (job.destroyed) job.destroyed(out);
        return out;
    }
    if (job.destroyed) job.destroyed(out);
    if (in_use) {
        {
            std::lock_guard lock(mu_);
            status_.key_problem.clear();
        }
        out.ok = true;
        out.message =
            "compromised key destroyed; a newer identity already serves: " + serving->subject();
        return out;
    }
    // 4. A new key and a fresh enrollment with the bootstrap credentials.
    auto enrolled = attempt(false, stop, true);
    out.steps.insert(out.steps.end(), enrolled.steps.begin(), enrolled.steps.end());
    out.ok = enrolled.ok;
    out.message = enrolled.ok
                      ? "compromised key destroyed; " + enrolled.message
                      : "compromised key destroyed; no new identity yet: " + enrolled.message;
    return out;
}

void Renewer::run() {
    thread_ = std::jthread([this](std::stop_token st) { loop(st); });
}

void Renewer::stop() {
    if (thread_.joinable()) {
        thread_.request_stop();
        cv_.notify_all();
        thread_.join();
    }
}

void Renewer::loop(std::stop_token stop) {
    while (!stop.stop_requested()) {
        std::optional<Job> job;
        bool scheduled = false, reenroll = false;
        {
            std::unique_lock lock(mu_);
            auto wake = status_.next_at.value_or(Clock::now() + std::chrono::hours(1));
            if (retire_postponed_)  // look again soon whether the old identity is released
                wake = std::min(wake, Clock::now() + std::chrono::milliseconds(500));
            else if (state_)
                for (const auto& r : state_->retiring) {
                    auto at = Clock::time_point(std::chrono::seconds(r.destroy_after));
                    if (auto retry = retire_retry_.find(r.key.id_hex); retry != retire_retry_.end())
                        at = std::max(at, retry->second.at);
                    wake = std::min(wake, at);
                }
            cv_.wait_until(lock, stop, wake, [&] { return !queue_.empty() || reenroll_; });
            if (stop.stop_requested()) return;
            if (reenroll_) {
                reenroll_ = false;
                reenroll = true;
            } else if (!queue_.empty()) {
                job = std::move(queue_.front());
                queue_.pop_front();
            } else if (status_.next_at && Clock::now() >= *status_.next_at) {
                scheduled = true;
            }
        }
        if (reenroll) {
            // The current key is gone: its identity cannot sign any more (requests get 503
            // no_identity instead of failed handshakes), and without a usable identity the
            // attempt is a first enrollment with the bootstrap credentials.
            identities_.clear();
            attempt(false, stop);
        } else if (job) {
            auto out = job->compromised ? replace_compromised(*job, stop)
                                        : attempt(job->kind == Kind::rotate, stop);
            if (job->done) job->done(out);
        } else if (scheduled) {
            attempt(false, stop);
        }
        State st;
        {
            std::lock_guard lock(mu_);
            if (!state_) continue;
            st = *state_;
        }
        retire_due(st);
    }
}

}  // namespace mtls::renewal
