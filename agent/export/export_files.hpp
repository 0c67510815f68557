// The [export] files of one identity, and writing those that differ from what is on disk.
// Never the private key: it stays on the token.
//
//   cert       the leaf certificate                       (certbot cert.pem)
//   chain      the intermediates, the leaf's issuer first  (certbot chain.pem)
//   fullchain  the leaf, then the intermediates            (certbot fullchain.pem)
//   ca         the EST server's CA certificates (/cacerts, RFC 7030 4.1.3), what
//              certificates of the same CA are verified with (certmonger -F, step's root)
#pragma once

#include "agent/identity/identity.hpp"
#include "common/atomic_file.hpp"
#include "config/config.hpp"

#include <string>
#include <vector>

namespace mtls::certexport {

struct ExportFile {
    std::string key;   // "cert", "chain", "fullchain", "ca" (as in [export])
    std::string path;  // where it goes
    std::string pem;   // what it holds
};

// The configured files and their contents, in the order they are written (the leaf files
// last: a watcher of cert.pem finds the others already in place). `ca_pem` empty: the ca file
// is left out and `problem` says why.
std::vector<ExportFile> export_contents(const config::Export& x, const identity::Identity& id,
                                        const std::string& ca_pem, std::string& problem);

// export.owner and export.group as ids (-1 where not set); throws std::runtime_error naming
// the key when a name has no id on this host.
files::FileOwner resolve_owner(const config::Export& x);

// Whether `f` is on disk as wanted: a regular file with that content, that mode and (where
// set) that owner.
bool up_to_date(const ExportFile& f, mode_t mode, const files::FileOwner& owner);

// Writes `f` atomically with its mode and owner set before it appears. Throws
// std::runtime_error saying what failed and what to do.
void write_export(const ExportFile& f, const config::Export& x, const files::FileOwner& owner);

}  // namespace mtls::certexport
