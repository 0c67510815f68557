#!/usr/bin/env bash
# package.sh — build the Debian package mtls-agent_<version>-<rev>_<arch>.deb with CPack:
# configures the default preset (prefix /usr), builds the two programs and the man pages only,
# runs cpack (cmake/MtlsPackage.cmake), then lintian. Prints the package's path last.
#   scripts/package.sh              build + lintian
#   MTLS_LINTIAN=0 scripts/package.sh   skip lintian
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/deps.sh >&2
cmake --preset default >/dev/null
rm -f build/default/pkg/mtls-agent_*.deb
cmake --build --preset default -j "$(nproc)" --target deb >&2
deb="$(ls build/default/pkg/mtls-agent_*.deb)"
if [ "${MTLS_LINTIAN:-1}" != 0 ]; then
  # Errors fail the build; warnings are explained in docs/packaging.md.
  lintian --allow-root "$deb" >&2 || { echo "package.sh: lintian found errors" >&2; exit 1; }
fi
echo "$deb"
