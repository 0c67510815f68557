#!/usr/bin/env bash
# deps.sh — install the Debian 12 packages mtls-agent needs to build, test and demo.
# Idempotent: installs only what is missing. Runs apt-get as root, through sudo otherwise.
#   scripts/deps.sh            build + tests + demo
#   scripts/deps.sh --bench    also the peers and load tool for bench/ (nginx, haproxy, wrk)
set -euo pipefail

pkgs=(
  # toolchain
  g++ cmake ninja-build pkg-config git
  # libraries (DESIGN.md "Chosen dependencies")
  libssl-dev libboost-dev libcurl4-openssl-dev libtomlplusplus-dev nlohmann-json3-dev
  libcli11-dev libsystemd-dev libp11-kit-dev libmimalloc-dev
  # tests: GoogleTest, SoftHSM2, pkcs11-tool, curl/openssl as independent peers, fuzzing
  libgtest-dev softhsm2 opensc openssl curl jq coreutils procps clang libfuzzer-14-dev
  libclang-rt-14-dev
  # tests/tpm and ./demo.sh --tpm: a software TPM (swtpm), the access broker on a private
  # D-Bus, its TCTI, the tpm2-pkcs11 module and tpm2_ptool (softhsm-setup/tpm-setup.sh)
  swtpm tpm2-abrmd libtss2-tcti-tabrmd0 dbus-daemon libtpm2-pkcs11-1 libtpm2-pkcs11-tools
  # packaging (cmake/MtlsPackage.cmake, tests/package): man pages, dpkg-shlibdeps, lintian
  scdoc man-db dpkg-dev lintian binutils
)
if [ "${1:-}" = "--bench" ]; then
  pkgs+=(wrk nginx-light haproxy libbenchmark-dev)
fi

missing=()
for p in "${pkgs[@]}"; do
  status="$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)"
  [ "$status" = "install ok installed" ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && { echo "deps: all ${#pkgs[@]} packages present"; exit 0; }

echo "deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "deps: not root and no sudo; install: ${missing[*]}" >&2; exit 1; }
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
