// [export] and [renewal] on_renew: handing the certificate to other apps (files they read,
// and a command told when they changed).
#include "config/checks.hpp"
#include "config/duration.hpp"
#include "config/sections.hpp"

#include <cstdio>
#include <map>

namespace mtls::config::detail {

using checks::quote;

void read_on_renew(Section& s, Renewal& r) {
    std::vector<int> lines;
    if (s.str_list("on_renew", r.on_renew, &lines) && !r.on_renew.empty()) {
        for (std::size_t i = 0; i < r.on_renew.size(); ++i)
            if (r.on_renew[i].find('\0') != std::string::npos)
                s.errors().add(lines[i], s.key_path("on_renew") + "[" + std::to_string(i) + "]",
                               "contains a NUL character");
        // No shell: the program is named by its absolute path, found when the config is read.
        const std::string& program = r.on_renew.front();
        if (program.empty() || program.front() != '/')
            s.errors().add(lines[0], s.key_path("on_renew") + "[0]",
                           quote(program) +
                               " is not an absolute path; the command runs without a shell and "
                               "without a PATH search (write e.g. \"/usr/bin/systemctl\")");
        else if (auto e = checks::executable_file(program); !e.empty())
            s.errors().add(lines[0], s.key_path("on_renew") + "[0]", e);
    }
    if (s.duration("on_renew_timeout", r.on_renew_timeout, std::chrono::seconds(1)) &&
        r.on_renew_timeout > std::chrono::hours(1))
        s.error("on_renew_timeout", quote(format_duration(r.on_renew_timeout)) +
                                        " is too long (at most 1h): a hung command holds back "
                                        "the export of the next certificate");
}

void read_export(Section& root, Config& c) {
    Section s = section(root, "export", false);
    auto& x = c.exports;
    std::map<std::string, std::string> seen;  // path -> the key that names it
    for (auto [key, out] : {std::pair<std::string_view, std::string*>{"cert", &x.cert},
                            {"chain", &x.chain},
                            {"fullchain", &x.fullchain},
                            {"ca", &x.ca}}) {
        if (!s.str(key, *out) || out->empty()) continue;
        if (!s.check(key, checks::existing_parent_dir(*out))) continue;
        if (auto [it, fresh] = seen.emplace(*out, std::string(key)); !fresh)
            s.error(key, quote(*out) + " is also export." + it->second +
                             "; give each file its own path");
    }
    if (s.mode("mode", x.mode) && (x.mode & 022) != 0) {
        char text[16];
        std::snprintf(text, sizeof text, "%04o", static_cast<unsigned>(x.mode));
        s.error("mode", quote(text) +
                            " lets group or others write the files, so they could replace the "
                            "certificate other apps trust; use e.g. \"0644\" or \"0640\"");
    }
    uid_t uid = 0;
    gid_t gid = 0;
    if (s.str("owner", x.owner) && !x.owner.empty())
        s.check("owner", checks::user_id(x.owner, uid));
    if (s.str("group", x.group) && !x.group.empty())
        s.check("group", checks::group_id(x.group, gid));
    s.finish();
}

}  // namespace mtls::config::detail
