#!/usr/bin/env bash
# tpm-setup.sh — a throwaway TPM 2.0-backed PKCS#11 token (tpm2-pkcs11) on a software TPM, for
# development, tests and `./demo.sh --tpm`. Never for production keys: the TPM is swtpm.
#
#   softhsm-setup/tpm-setup.sh DIR [--label LABEL]    start everything, make the token
#   softhsm-setup/tpm-setup.sh DIR --stop             stop what DIR's start started
#
# Starts, all owned by this user and all state under DIR (mode 0700):
#   swtpm          a TPM 2.0 simulator on 127.0.0.1, two consecutive free ports (command and
#                  control: the swtpm TCTI uses port+1); state DIR/swtpm
#   dbus-daemon    a private session bus at DIR/run/bus (not the user's session bus)
#   tpm2-abrmd     the TPM2 access broker and resource manager, on that bus, in front of swtpm
#                  (tpm2_ptool against swtpm directly fails: "out of memory for object contexts")
# then makes a tpm2-pkcs11 store DIR/store (tpm2_ptool init + addtoken) with random PINs in
# DIR/user-pin and DIR/so-pin (0600). Running it again with the same DIR while it runs reuses it.
#
# Prints NAME=value lines, one a line, values not shell-quoted (the token URI holds a ';':
# read them with `while IFS='=' read -r k v; do export "$k=$v"; done`, not eval); also
# written to DIR/env:
#   TPM2_PKCS11_STORE=…  TPM2_PKCS11_TCTI=tabrmd:bus_type=session  DBUS_SESSION_BUS_ADDRESS=…
#   TPM2_PKCS11_LOG_LEVEL=0  MTLS_PKCS11_MODULE=…  MTLS_PKCS11_TOKEN_URI=pkcs11:…
#   MTLS_PKCS11_PIN_FILE=…  MTLS_TPM_SWTPM_PORT=…
# The agent (and anything else loading the module) needs the first four in its environment;
# DIR/agent.toml.part holds the [pkcs11] table for them.
#
# PINs: tpm2_ptool takes them only as --userpin/--sopin. This script never puts them on a
# command line: it runs tpm2_ptool's own entry point inside python3 with the argument list
# built from the PIN files. tpm2_ptool itself, though, passes authorisation values derived
# from the PINs to the tpm2-tools it runs (tpm2_create -p …), visible in /proc to this host's
# users for the seconds the setup takes. Acceptable for a throwaway token on a test TPM;
# on a real host make the token as documented in docs/tpm.md.
set -euo pipefail

usage() { sed -n '2,31p' "$0" | sed 's/^# \{0,1\}//'; }

dir=""; label="mtls-agent"; stop=0
while [ $# -gt 0 ]; do
  case "$1" in
    --label) label="$2"; shift 2 ;;
    --stop) stop=1; shift ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "tpm-setup: unknown option $1" >&2; usage >&2; exit 2 ;;
    *) [ -z "$dir" ] || { echo "tpm-setup: one DIR only" >&2; exit 2; }; dir="$1"; shift ;;
  esac
done
[ -n "$dir" ] || { usage >&2; exit 2; }

umask 077
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
chmod 700 "$dir"
run="$dir/run"

# Running and not a zombie (daemons are reparented to init, which may reap them late).
running() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null && \
  [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null | head -c1)" != Z ]; }
# Stops one daemon by the pid file it wrote, waiting (with a deadline) for it to go.
stop_pidfile() {
  local f="$1" pid i
  [ -s "$f" ] || return 0
  pid="$(tr -dc 0-9 < "$f")"
  rm -f "$f"
  running "$pid" || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 100); do running "$pid" || return 0; sleep 0.02; done
  kill -KILL "$pid" 2>/dev/null || true
}
stop_all() {
  stop_pidfile "$run/abrmd.pid"
  stop_pidfile "$run/dbus.pid"
  stop_pidfile "$run/swtpm.pid"
}

if [ "$stop" = 1 ]; then
  stop_all
  exit 0
fi

alive() { [ -s "$1" ] && running "$(tr -dc 0-9 < "$1")"; }
if alive "$run/swtpm.pid" && alive "$run/dbus.pid" && alive "$run/abrmd.pid" && [ -s "$dir/env" ]; then
  cat "$dir/env"
  exit 0
fi

need() { command -v "$1" >/dev/null || [ -x "$1" ] || {
  echo "tpm-setup: $1 not found (apt-get install $2; or run scripts/deps.sh)" >&2; exit 1; }; }
need swtpm swtpm
need dbus-daemon dbus-daemon
abrmd="$(command -v tpm2-abrmd || echo /usr/sbin/tpm2-abrmd)"
need "$abrmd" tpm2-abrmd
need tpm2_ptool libtpm2-pkcs11-tools
need tpm2_getcap tpm2-tools
module=""
for m in /usr/lib/x86_64-linux-gnu/pkcs11/libtpm2_pkcs11.so /usr/lib/aarch64-linux-gnu/pkcs11/libtpm2_pkcs11.so \
         /usr/lib/x86_64-linux-gnu/libtpm2_pkcs11.so.1 /usr/lib/aarch64-linux-gnu/libtpm2_pkcs11.so.1 \
         /usr/local/lib/libtpm2_pkcs11.so; do
  [ -f "$m" ] && { module="$m"; break; }
done
[ -n "$module" ] || { echo "tpm-setup: libtpm2_pkcs11.so not found (apt-get install libtpm2-pkcs11-1)" >&2; exit 1; }
ls /usr/lib/*/libtss2-tcti-tabrmd.so* >/dev/null 2>&1 || {
  echo "tpm-setup: the tabrmd TCTI is missing (apt-get install libtss2-tcti-tabrmd0)" >&2; exit 1; }

# Whatever fails from here on: stop what was started, say where the logs are.
trap 'rc=$?; if [ $rc -ne 0 ]; then stop_all; echo "tpm-setup: failed; logs in $run" >&2; fi' EXIT
mkdir -p "$run" "$dir/swtpm" "$dir/store"
chmod 700 "$run" "$dir/swtpm" "$dir/store"

# Polls `cmd` (a shell snippet) until it succeeds or $2 seconds pass.
wait_for() {
  local cmd="$1" secs="$2" what="$3" end=$((SECONDS + $2))
  while ! eval "$cmd" >/dev/null 2>&1; do
    [ $SECONDS -lt $end ] || { echo "tpm-setup: $what not ready after ${secs}s" >&2; return 1; }
    sleep 0.02
  done
}

# swtpm on two consecutive free loopback ports (found by binding port 0 and port+1, then
# released for swtpm to bind: another process may take one in between, so up to 5 tries).
free_ports() {
  python3 - <<'PY'
import socket
for _ in range(200):
    a = socket.socket(); a.bind(("127.0.0.1", 0)); p = a.getsockname()[1]
    b = socket.socket()
    try:
        b.bind(("127.0.0.1", p + 1))
    except OSError:
        continue
    finally:
        b.close(); a.close()
    print(p); break
PY
}
for try in 1 2 3 4 5; do
  port="$(free_ports)"
  [ -n "$port" ] || continue
  if swtpm socket --tpm2 --daemon --tpmstate "dir=$dir/swtpm" --flags not-need-init,startup-clear \
       --server "type=tcp,port=$port,bindaddr=127.0.0.1" --ctrl "type=tcp,port=$((port + 1)),bindaddr=127.0.0.1" \
       --pid "file=$run/swtpm.pid" --log "file=$run/swtpm.log" </dev/null >>"$run/swtpm.log" 2>&1; then
    echo "$port" > "$run/swtpm.port"; break
  fi
done
[ -s "$run/swtpm.port" ] || { echo "tpm-setup: swtpm did not start (see $run/swtpm.log)" >&2; exit 1; }
port="$(cat "$run/swtpm.port")"
wait_for "alive '$run/swtpm.pid'" 10 swtpm

# dbus-daemon: a private session bus; it forks and prints its address and pid.
bus="unix:path=$run/bus"
dbus_out="$(dbus-daemon --session --address="$bus" --fork --print-address=1 --print-pid=1 </dev/null)"
printf '%s\n' "$dbus_out" | sed -n 2p > "$run/dbus.pid"
export DBUS_SESSION_BUS_ADDRESS="$(printf '%s\n' "$dbus_out" | sed -n 1p)"

# tpm2-abrmd on that bus, in front of swtpm. --allow-root only when we are root (CI).
root_opt=(); [ "$(id -u)" -eq 0 ] && root_opt=(--allow-root)
setsid "$abrmd" --session --tcti="swtpm:host=127.0.0.1,port=$port" "${root_opt[@]}" \
  --logger=stdout </dev/null >>"$run/abrmd.log" 2>&1 &
echo $! > "$run/abrmd.pid"
export TPM2TOOLS_TCTI="tabrmd:bus_type=session" TPM2_PKCS11_TCTI="tabrmd:bus_type=session"
export TPM2_PKCS11_STORE="$dir/store" TPM2_PKCS11_LOG_LEVEL=0
wait_for "alive '$run/abrmd.pid' && tpm2_getcap properties-fixed" 20 tpm2-abrmd

newpin() { head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
for f in so-pin user-pin; do
  if [ ! -s "$dir/$f" ]; then newpin > "$dir/$f.tmp"; echo >> "$dir/$f.tmp"; mv "$dir/$f.tmp" "$dir/$f"; fi
  chmod 600 "$dir/$f"
done

# tpm2_ptool with an argument list built inside python3 (PINs read from their files there).
# (Its own interpreter, from its #! line: a python3 earlier in PATH may lack its modules.)
ptool_bin="$(command -v tpm2_ptool)"
ptool_py="$(sed -n '1s/^#! *//p' "$ptool_bin")"
ptool() {
  "${ptool_py:-/usr/bin/python3}" - "$dir" "$ptool_bin" "$@" <<'PY'
import runpy, sys
d, tool, args = sys.argv[1], sys.argv[2], sys.argv[3:]
pin = lambda n: open(f"{d}/{n}").readline().strip()
args = [pin(a[5:]) if a.startswith("@pin:") else a for a in args]
sys.argv = ["tpm2_ptool"] + args
runpy.run_path(tool, run_name="__main__")
PY
}
if ! ptool listtokens --pid 1 --path "$dir/store" 2>/dev/null | grep -q "label: $label\$"; then
  rm -f "$dir/store/tpm2_pkcs11.sqlite3"
  ptool init --path "$dir/store" > "$run/ptool-init.log"
  pid="$(sed -n 's/^id: //p' "$run/ptool-init.log")"
  ptool addtoken --pid "${pid:-1}" --label "$label" --sopin @pin:so-pin --userpin @pin:user-pin \
    --path "$dir/store" > "$run/ptool-addtoken.log"
fi

# The token's serial, as the module reports it (for an exact pkcs11: URI).
serial="$(pkcs11-tool --module "$module" -L 2>/dev/null | awk -v l="$label" '
  /token label/ { sub(/.*: /, ""); cur=$0 } /serial num/ { sub(/.*: /, ""); if (cur == l) { print; exit } }')"
[ -n "$serial" ] || { echo "tpm-setup: the module does not list token \"$label\"" >&2; exit 1; }

pct() { local s="$1" out="" c i; for ((i=0; i<${#s}; i++)); do c="${s:i:1}"
  case "$c" in [A-Za-z0-9._~-]) out+="$c" ;; *) out+="$(printf '%%%02X' "'$c")" ;; esac; done; printf '%s' "$out"; }
uri="pkcs11:token=$(pct "$label");serial=$(pct "$serial")"

cat > "$dir/env.tmp" <<ENV
TPM2_PKCS11_STORE=$dir/store
TPM2_PKCS11_TCTI=tabrmd:bus_type=session
DBUS_SESSION_BUS_ADDRESS=$DBUS_SESSION_BUS_ADDRESS
TPM2_PKCS11_LOG_LEVEL=0
MTLS_PKCS11_MODULE=$module
MTLS_PKCS11_TOKEN_URI=$uri
MTLS_PKCS11_PIN_FILE=$dir/user-pin
MTLS_TPM_SWTPM_PORT=$port
ENV
mv "$dir/env.tmp" "$dir/env"
cat > "$dir/agent.toml.part.tmp" <<TOML
# tpm2-pkcs11 token made by tpm-setup.sh; the agent's environment needs TPM2_PKCS11_STORE,
# TPM2_PKCS11_TCTI and DBUS_SESSION_BUS_ADDRESS from $dir/env.
[pkcs11]
module = "$module"
token = "$uri"
pin_file = "$dir/user-pin"
TOML
mv "$dir/agent.toml.part.tmp" "$dir/agent.toml.part"
cat "$dir/env"
