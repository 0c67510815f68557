#!/usr/bin/env bash
# softhsm-setup.sh — make (or reuse) a throwaway SoftHSM2 token for development and tests.
#
#   softhsm-setup/softhsm-setup.sh DIR [--label LABEL] [--init-tool PATH]
#
# Everything lives under DIR: its own softhsm2.conf, the token store (DIR/tokens), and the
# PINs (DIR/user-pin, DIR/so-pin, mode 0600, random). /etc/softhsm and other users' tokens
# are never touched. Running it again with the same DIR and LABEL reuses the token.
#
# Prints, as shell assignments that can be eval'd:
#   SOFTHSM2_CONF=…  MTLS_PKCS11_MODULE=…  MTLS_PKCS11_TOKEN_URI=pkcs11:…  MTLS_PKCS11_PIN_FILE=…
set -euo pipefail

usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; }

dir=""; label="mtls-agent"; init_tool=""
while [ $# -gt 0 ]; do
  case "$1" in
    --label) label="$2"; shift 2 ;;
    --init-tool) init_tool="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "softhsm-setup: unknown option $1" >&2; usage >&2; exit 2 ;;
    *) [ -z "$dir" ] || { echo "softhsm-setup: one DIR only" >&2; exit 2; }; dir="$1"; shift ;;
  esac
done
[ -n "$dir" ] || { usage >&2; exit 2; }

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ -z "$init_tool" ]; then
  for c in "$here/../build/default/softhsm-setup/softhsm-token-init" \
           "$here/../build/asan/softhsm-setup/softhsm-token-init" \
           "$(command -v softhsm-token-init 2>/dev/null || true)"; do
    [ -n "$c" ] && [ -x "$c" ] && { init_tool="$c"; break; }
  done
fi
[ -n "$init_tool" ] && [ -x "$init_tool" ] || {
  echo "softhsm-setup: softhsm-token-init not found; build the project first (cmake --build --preset default) or pass --init-tool" >&2
  exit 1
}

module=""
for m in /usr/lib/softhsm/libsofthsm2.so /usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so \
         /usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so /usr/local/lib/softhsm/libsofthsm2.so; do
  [ -f "$m" ] && { module="$m"; break; }
done
[ -n "$module" ] || { echo "softhsm-setup: libsofthsm2.so not found (apt-get install softhsm2)" >&2; exit 1; }

umask 077
mkdir -p "$dir/tokens"
dir="$(cd "$dir" && pwd)"
chmod 700 "$dir" "$dir/tokens"
conf="$dir/softhsm2.conf"
if [ ! -f "$conf" ]; then
  cat > "$conf.tmp" <<CONF
# written by softhsm-setup.sh — a private token store, independent of /etc/softhsm
directories.tokendir = $dir/tokens
objectstore.backend = file
log.level = ERROR
slots.removable = false
CONF
  mv "$conf.tmp" "$conf"
fi

newpin() { head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
for f in so-pin user-pin; do
  if [ ! -s "$dir/$f" ]; then newpin > "$dir/$f.tmp"; echo >> "$dir/$f.tmp"; mv "$dir/$f.tmp" "$dir/$f"; fi
  chmod 600 "$dir/$f"
done

export SOFTHSM2_CONF="$conf"
serial="$("$init_tool" "$module" "$label" "$dir/so-pin" "$dir/user-pin")"

# RFC 7512: percent-encode everything outside the unreserved set.
pct() { local s="$1" out="" c i; for ((i=0; i<${#s}; i++)); do c="${s:i:1}"
  case "$c" in [A-Za-z0-9._~-]) out+="$c" ;; *) out+="$(printf '%%%02X' "'$c")" ;; esac; done; printf '%s' "$out"; }

echo "SOFTHSM2_CONF=$conf"
echo "MTLS_PKCS11_MODULE=$module"
echo "MTLS_PKCS11_TOKEN_URI=pkcs11:token=$(pct "$label");serial=$(pct "$serial")"
echo "MTLS_PKCS11_PIN_FILE=$dir/user-pin"
