// The one revocation checker of the process (the proxy, the EST client, the token client
// and the watch of our own certificate share its cache). Created on first use with default
// settings; the daemon applies [revocation] at start and on reload with configure().
#pragma once

#include <memory>

#include "revocation/checker.hpp"

namespace mtls::revocation {

std::shared_ptr<Checker> process_checker();
// New settings (CRL files re-read, knobs); the cache is kept.
void configure_process_checker(const Settings& settings);

}  // namespace mtls::revocation
