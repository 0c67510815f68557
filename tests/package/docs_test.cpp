// The man pages (docs/man/*.scd, built with scdoc) and the bash completion agree with the
// programs and the README: every --option a program's --help shows is in its man page, every
// option the man pages and the unit use exists, every key of the README's configuration
// reference is in mtls-agent.toml(5) under its table, and the completion offers exactly
// mtls-agentctl's subcommands. The man pages are lint-clean (man --warnings).
#include "tests/package/package_fixture.hpp"
#include "tests/support/subprocess.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

namespace fs = std::filesystem;
using mtls::test::run;
using mtls::test::package::read_file;

namespace {

fs::path man_source(const std::string& page) {
    return fs::path(MTLS_SOURCE_DIR) / "docs" / "man" / (page + ".scd");
}

std::set<std::string> long_options(const std::string& text) {
    std::set<std::string> out;
    std::regex opt(R"((^|[^A-Za-z0-9_-])(--[a-z][a-z0-9-]*[a-z0-9]))");
    for (std::sregex_iterator it(text.begin(), text.end(), opt), end; it != end; ++it)
        out.insert((*it)[2]);
    return out;
}

// The text of one "# SECTION" of a scdoc page (up to the next "# ").
std::string scd_section(const std::string& scd, const std::string& name) {
    auto at = scd.find("\n# " + name + "\n");
    if (at == std::string::npos) return "";
    at += name.size() + 4;
    auto end = scd.find("\n# ", at);
    return scd.substr(at, end == std::string::npos ? std::string::npos : end - at);
}

std::string help(const std::vector<std::string>& argv) {
    auto r = run(argv);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out;
}

// mtls-agentctl's subcommands as its --help lists them ("Subcommands:" section of CLI11).
std::vector<std::string> subcommands(const std::string& help_text) {
    std::vector<std::string> out;
    auto at = help_text.find("\nSubcommands:\n");
    if (at == std::string::npos) return out;
    std::istringstream in(help_text.substr(at + 14));
    for (std::string line; std::getline(in, line) && !line.empty();) {
        std::smatch m;
        if (std::regex_search(line, m, std::regex(R"(^  ([a-z][a-z-]*) )"))) out.push_back(m[1]);
    }
    return out;
}

std::string ctl_help_everywhere() {
    std::string all = help({MTLS_AGENTCTL_BINARY, "--help"});
    for (const auto& sub : subcommands(all)) {
        std::string h = help({MTLS_AGENTCTL_BINARY, sub, "--help"});
        all += h;
        for (const auto& subsub : subcommands(h))
            all += help({MTLS_AGENTCTL_BINARY, sub, subsub, "--help"});
    }
    return all;
}

std::vector<std::string> completion_words(const std::vector<std::string>& words) {
    std::vector<std::string> argv = {"bash",
                                     "--norc",
                                     "-c",
                                     "source \"$1\" || exit 9; shift; COMP_WORDS=(\"$@\"); "
                                     "COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 )); "
                                     "complete -p mtls-agentctl >/dev/null || exit 8; "
                                     "_mtls_agentctl; printf '%s\\n' \"${COMPREPLY[@]}\"",
                                     "bash",
                                     MTLS_SOURCE_DIR "/packaging/completion/mtls-agentctl"};
    argv.insert(argv.end(), words.begin(), words.end());
    auto r = run(argv);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::vector<std::string> out;
    std::istringstream in(r.out);
    for (std::string l; std::getline(in, l);)
        if (!l.empty()) out.push_back(l);
    return out;
}

}  // namespace

TEST(ManPages, BuiltAndLintCleanWithManWarnings) {
    for (const char* page :
         {"man8/mtls-agent.8", "man8/mtls-agentctl.8", "man5/mtls-agent.toml.5"}) {
        SCOPED_TRACE(page);
        const fs::path gz = fs::path(MTLS_BINARY_DIR) / "install-files" / "man" /
                            (fs::path(page).filename().string() + ".gz");
        ASSERT_TRUE(fs::exists(gz)) << gz << " not built (scdoc missing?)";
        auto r = run({"man", "--warnings", "-E", "UTF-8", "-l", "-Tutf8", "-Z", gz.string()},
                     {"LC_ALL=C.UTF-8", "MANROFFSEQ=", "MANWIDTH=80"});
        EXPECT_EQ(r.exit_code, 0);
        EXPECT_EQ(r.err, "") << "man --warnings";
        auto text = run({"man", "-l", gz.string()}, {"MANWIDTH=80", "MANPAGER=cat"});
        EXPECT_NE(text.out.find("NAME"), std::string::npos);
        EXPECT_NE(text.out.find("SEE ALSO"), std::string::npos);
    }
}

TEST(ManPages, EveryHelpOptionIsInTheManPage) {
    const std::map<std::string, std::string> pages = {
        {"mtls-agent.8", help({MTLS_AGENT_BINARY, "--help"})},
        {"mtls-agentctl.8", ctl_help_everywhere()},
    };
    for (const auto& [page, text] : pages) {
        const std::string scd = read_file(man_source(page));
        auto opts = long_options(text);
        EXPECT_GE(opts.size(), 3u) << page;
        for (const auto& o : opts)
            EXPECT_NE(scd.find("*" + o + "*"), std::string::npos)
                << o << " (in --help) is not documented in " << page;
    }
}

// The other way round, and the options the unit passes: each must exist in the program. (On a
// branch without the daemon's --quiet this fails for --quiet: the unit's ExecStartPre uses it.)
TEST(ManPages, EveryDocumentedOptionAndEveryUnitOptionExists) {
    const std::string agent_help = help({MTLS_AGENT_BINARY, "--help"});
    const auto agent_opts = long_options(agent_help);
    const auto ctl_opts = long_options(ctl_help_everywhere());
    for (const auto& o :
         long_options(scd_section(read_file(man_source("mtls-agent.8")), "OPTIONS")))
        EXPECT_TRUE(agent_opts.count(o))
            << o << " is in mtls-agent(8) but not in mtls-agent --help";
    for (const auto& o :
         long_options(scd_section(read_file(man_source("mtls-agentctl.8")), "OPTIONS") +
                      scd_section(read_file(man_source("mtls-agentctl.8")), "COMMANDS")))
        EXPECT_TRUE(ctl_opts.count(o)) << o << " is in mtls-agentctl(8) but not in its --help";

    const std::string unit =
        read_file(fs::path(MTLS_SOURCE_DIR) / "systemd" / "mtls-agent.service.in");
    std::regex exec(R"(^Exec[A-Za-z]*=\S*/(mtls-agent|mtls-agentctl) (.*)$)");
    int lines = 0;
    std::istringstream in(unit);
    for (std::string l; std::getline(in, l);) {
        std::smatch m;
        if (!std::regex_search(l, m, exec)) continue;
        ++lines;
        const auto& known = m[1] == "mtls-agent" ? agent_opts : ctl_opts;
        for (const auto& o : long_options(m[2]))
            EXPECT_TRUE(known.count(o)) << l << ": " << o << " is not an option of " << m[1];
    }
    EXPECT_EQ(lines, 3);  // ExecStartPre, ExecStart, ExecReload
}

TEST(ManPages, ExitStatusesOfMtlsAgentctlAreDocumented) {
    const std::string h = help({MTLS_AGENTCTL_BINARY, "--help"});
    auto at = h.find("\nEXIT STATUS\n");
    ASSERT_NE(at, std::string::npos);
    const std::string block = h.substr(at, h.find("\n\n", at + 1) - at);
    const std::string man = scd_section(read_file(man_source("mtls-agentctl.8")), "EXIT STATUS");
    std::regex code(R"((^|\s)([0-9]{1,3}) +[a-z])");
    int codes = 0;
    for (std::sregex_iterator it(block.begin(), block.end(), code), end; it != end; ++it, ++codes)
        EXPECT_NE(man.find("*" + (*it)[2].str() + "*\n"), std::string::npos)
            << "exit status " << (*it)[2] << " is not in mtls-agentctl(8)";
    EXPECT_GE(codes, 6);  // 0 1 2 3 4 64
}

// Every key of the README's "Configuration reference" tables is in mtls-agent.toml(5), in the
// subsection of the same table.
TEST(ManPages, EveryReadmeConfigKeyIsInTheConfigManPage) {
    const std::string readme = read_file(fs::path(MTLS_SOURCE_DIR) / "README.md");
    auto start = readme.find("\n## Configuration reference");
    ASSERT_NE(start, std::string::npos);
    const std::string ref = readme.substr(start, readme.find("\n## ", start + 1) - start);

    // The man page's "## [table] …" subsections.
    const std::string man = read_file(man_source("mtls-agent.toml.5"));
    std::map<std::string, std::string> man_tables;
    std::regex heading(R"(\n## \[+([a-z0-9.]+)\]+[^\n]*\n)");
    std::vector<std::pair<std::string, std::size_t>> marks;
    for (std::sregex_iterator it(man.begin(), man.end(), heading), end; it != end; ++it)
        marks.emplace_back((*it)[1], it->position() + it->length());
    for (std::size_t i = 0; i < marks.size(); ++i) {
        auto end = i + 1 < marks.size() ? man.rfind("\n## ", marks[i + 1].second - 1) : man.size();
        man_tables[marks[i].first] = man.substr(marks[i].second, end - marks[i].second);
    }

    std::string table;
    int keys = 0;
    std::istringstream in(ref);
    for (std::string l; std::getline(in, l);) {
        std::smatch m;
        if (std::regex_search(l, m, std::regex(R"(^### \[+([a-z0-9.]+)\]+)"))) {
            table = m[1];
            EXPECT_TRUE(man_tables.count(table)) << "no [" << table << "] in mtls-agent.toml(5)";
            continue;
        }
        if (l.rfind("| `", 0) != 0 || table.empty()) continue;
        const std::string first = l.substr(1, l.find('|', 1) - 1);
        std::regex key("`([a-z_]+)`");
        for (std::sregex_iterator it(first.begin(), first.end(), key), end; it != end; ++it) {
            ++keys;
            EXPECT_NE(man_tables[table].find("*" + (*it)[1].str() + "*"), std::string::npos)
                << table << "." << (*it)[1] << " (README) is not in mtls-agent.toml(5)";
        }
    }
    EXPECT_GT(keys, 70);
}

TEST(BashCompletion, LoadsAndCompletesTheSubcommandsOfMtlsAgentctl) {
    const auto subs = subcommands(help({MTLS_AGENTCTL_BINARY, "--help"}));
    ASSERT_GE(subs.size(), 7u);
    auto offered = completion_words({"mtls-agentctl", ""});
    EXPECT_EQ(std::set<std::string>(offered.begin(), offered.end()),
              std::set<std::string>(subs.begin(), subs.end()));
    EXPECT_EQ(completion_words({"mtls-agentctl", "ro"}), std::vector<std::string>{"rotate"});
    EXPECT_EQ(completion_words({"mtls-agentctl", "--json", "tok"}),
              std::vector<std::string>{"tokens"});
    EXPECT_EQ(completion_words({"mtls-agentctl", "tokens", ""}), std::vector<std::string>{"flush"});
    EXPECT_EQ(completion_words({"mtls-agentctl", "cert", "--j"}),
              (std::vector<std::string>{"--jwk", "--json"}));
    EXPECT_EQ(completion_words({"mtls-agentctl", "rotate", "--w"}),
              std::vector<std::string>{"--wait"});
    // Every global option --help lists is offered after "--".
    auto dashes = completion_words({"mtls-agentctl", "--"});
    for (const auto& o : long_options(help({MTLS_AGENTCTL_BINARY, "--help"})))
        if (o != "--jwk" && o != "--wait" && o != "--compromised") {
            EXPECT_NE(std::find(dashes.begin(), dashes.end(), o), dashes.end()) << o;
        }
}
