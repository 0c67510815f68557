#include "agent/export/export_files.hpp"

#include "common/ossl.hpp"
#include "common/x509_text.hpp"
#include "config/checks.hpp"

#include <openssl/bn.h>
#include <openssl/pem.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <stdexcept>
#include <system_error>

namespace mtls::certexport {

std::vector<ExportFile> export_contents(const config::Export& x, const identity::Identity& id,
                                        const std::string& ca_pem, std::string& problem) {
    std::vector<X509*> chain;
    for (const auto& c : id.chain()) chain.push_back(c.get());
    std::vector<X509*> full{id.leaf()};
    full.insert(full.end(), chain.begin(), chain.end());
    std::vector<ExportFile> out;
    if (!x.ca.empty()) {
        if (ca_pem.empty())
            problem = "export.ca: the agent holds no EST CA certificates yet; " + x.ca +
                      " is written after the next enrollment";
        else
            out.push_back({"ca", x.ca, ca_pem});
    }
    if (!x.chain.empty()) out.push_back({"chain", x.chain, x509text::pem(chain)});
    if (!x.fullchain.empty()) out.push_back({"fullchain", x.fullchain, x509text::pem(full)});
    if (!x.cert.empty()) out.push_back({"cert", x.cert, x509text::pem(id.leaf())});
    return out;
}

files::FileOwner resolve_owner(const config::Export& x) {
    files::FileOwner o;
    if (!x.owner.empty())
        if (auto e = config::checks::user_id(x.owner, o.uid); !e.empty())
            throw std::runtime_error("export.owner: " + e);
    if (!x.group.empty())
        if (auto e = config::checks::group_id(x.group, o.gid); !e.empty())
            throw std::runtime_error("export.group: " + e);
    return o;
}

bool up_to_date(const ExportFile& f, mode_t mode, const files::FileOwner& owner) {
    struct stat st {};
    if (::lstat(f.path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return false;
    if ((st.st_mode & 07777) != mode) return false;
    if (owner.uid != static_cast<uid_t>(-1) && st.st_uid != owner.uid) return false;
    if (owner.gid != static_cast<gid_t>(-1) && st.st_gid != owner.gid) return false;
    if (static_cast<std::size_t>(st.st_size) != f.pem.size()) return false;
    try {
        return files::read_all(f.path, f.pem.size() + 1) == f.pem;
    } catch (const std::exception&) {
        return false;
    }
}

void write_export(const ExportFile& f, const config::Export& x, const files::FileOwner& owner) {
    const std::string key = "export." + f.key;
    if (auto e = config::checks::existing_parent_dir(f.path); !e.empty())
        throw std::runtime_error(key + ": " + e);
    try {
        files::write_atomic(f.path, f.pem, x.mode, owner);
    } catch (const std::system_error& e) {
        if (e.code().value() != EPERM || std::string(e.what()).find("owner") == std::string::npos)
            throw std::runtime_error(key + ": " + e.what());
        std::string to = x.owner.empty()   ? "group " + x.group
                         : x.group.empty() ? "owner " + x.owner
                                           : "owner " + x.owner + " and group " + x.group;
        throw std::runtime_error(
            key + ": cannot give " + f.path + " to " + to + ": the agent runs as uid " +
            std::to_string(::geteuid()) +
            ", which may not (only root gives files to another user, and others set only a group "
            "they belong to); run the agent as root, or drop export.owner and set export.group "
            "to a group of the agent's user (e.g. SupplementaryGroups= in the unit)");
    }
}

}  // namespace mtls::certexport
