#include "tests/est/sandbox_child.hpp"

#include "common/atomic_file.hpp"

namespace mtls::est::testing {

SandboxChild::SandboxChild(std::vector<std::string> extra) {
    files::write_atomic(credentials_file(), "agent-17:s3cret-pass\n", 0600);
    std::vector<std::string> args = {"--est-credentials", credentials_file().string(),
                                     "--log-level", "warning"};
    args.insert(args.end(), extra.begin(), extra.end());
    process_ = std::make_unique<test::SandboxProcess>(dir_.path(), std::move(args));
}

std::string SandboxChild::est_base() const {
    return "https://127.0.0.1:" + std::to_string(process_->est_port());
}

}  // namespace mtls::est::testing
