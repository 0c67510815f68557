// Internal to config/: one reader per top-level section. Each reads its table into the
// Config, validates each value and reports problems to the Section's error list.
#pragma once

#include "config/config.hpp"
#include "config/reader.hpp"

namespace mtls::config::detail {

// `root` is the whole document; each reader finds its own table in it.
// A list of strings at `key` of section `s`, each checked by `check` (an error naming
// key[i] and its line for each bad element).
void checked_list(Section& root, Section& s, std::string_view key, std::vector<std::string>& out,
                  std::string (*check)(std::string_view));

void read_agent(Section& root, Config& c);
void read_pkcs11(Section& root, Config& c);
void read_key(Section& root, Config& c);
void read_est(Section& root, Config& c);
void read_renewal(Section& root, Config& c);
void read_export(Section& root, Config& c);
// [renewal] on_renew and on_renew_timeout, inside read_renewal's section.
void read_on_renew(Section& s, Renewal& r);
void read_oauth(Section& root, Config& c);
void read_routes(Section& root, Config& c);  // after read_oauth: checks token_profile names
void read_listener(Section& root, Config& c);
void read_admin(Section& root, Config& c);
void read_metrics(Section& root, Config& c);  // after read_listener: the loopback opt-in
void read_logging(Section& root, Config& c);
void read_revocation(Section& root, Config& c);
// revocation = "off" | "soft-fail" | "hard-fail" in section s.
void read_revocation_policy(Section& s, RevocationPolicy& out);

// The table `key` of root: absent (or not a table) gives a Section without a table, whose
// readers keep every default. A missing required section is reported at line 0.
Section section(Section& root, std::string_view key, bool required, std::string_view hint = {});

// A pkcs11: URI (RFC 7512) that carries no PIN.
std::string pkcs11_uri(std::string_view uri);

}  // namespace mtls::config::detail
