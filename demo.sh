#!/usr/bin/env bash
# demo.sh — mtls-agent's main job, end to end, on this machine:
#   deps -> build -> a throwaway SoftHSM2 token -> the partner sandbox (CA + EST + OAuth AS +
#   partner API on loopback) -> mtls-agent (key generated on the token, EST enrollment, a
#   certificate-bound token) -> one plain-HTTP call through the agent, answer printed ->
#   mtls-agentctl status -> everything stopped.
#
#   ./demo.sh                 run it and clean up
#   ./demo.sh --keep-running  leave sandbox and agent up and print how to call them
#   ./demo.sh --tpm           the same with the key in a TPM 2.0 (tpm2-pkcs11) instead of
#                             SoftHSM2: a software TPM (swtpm) behind tpm2-abrmd on a private
#                             D-Bus, made by softhsm-setup/tpm-setup.sh (combinable)
#
# Work files go to ./demo-run/ (recreated each run; PINs and credentials there are 0600).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
root="$(pwd)"

keep=0; tpm=0
for arg in "$@"; do
  case "$arg" in
    --keep-running) keep=1 ;;
    --tpm) tpm=1 ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "demo.sh: unknown option $arg (try --help)" >&2; exit 2 ;;
  esac
done

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
die() { echo "demo.sh: $*" >&2; exit 1; }

step "Installing missing Debian packages (scripts/deps.sh)"
scripts/deps.sh

step "Building mtls-agent, mtls-agentctl, the partner sandbox and softhsm-token-init (preset default)"
cmake --preset default >/dev/null
cmake --build --preset default -j "$(nproc)" --target mtls-agent mtls-agentctl partner-sandbox softhsm-token-init
bin="$root/build/default"
t0=$(date +%s)

run="$root/demo-run"
rm -rf "$run"; mkdir -p "$run"; chmod 700 "$run"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ "$tpm" = 1 ]; then softhsm-setup/tpm-setup.sh "$run/token" --stop; fi
}
if [ "$keep" = 0 ]; then trap cleanup EXIT; fi

# Polls `cond` every 0.1 s until it succeeds or `secs` pass.
wait_for() { local secs="$1" what="$2"; shift 2; local end=$((SECONDS + secs))
  until "$@"; do [ $SECONDS -lt $end ] || die "timed out after ${secs}s waiting for $what"; sleep 0.1; done; }

if [ "$tpm" = 1 ]; then
  step "Starting a software TPM (swtpm + tpm2-abrmd on a private D-Bus) and making a tpm2-pkcs11 token (softhsm-setup/tpm-setup.sh)"
  # NAME=value lines, exported as they are (not eval'd: the token URI holds a ';'); among
  # them what tpm2-pkcs11 reads (TPM2_PKCS11_STORE, _TCTI, DBUS_SESSION_BUS_ADDRESS).
  tpm_env="$(softhsm-setup/tpm-setup.sh "$run/token" --label demo-agent)"
  while IFS='=' read -r k v; do export "$k=$v"; done <<< "$tpm_env"
  echo "TPM: swtpm on 127.0.0.1:$MTLS_TPM_SWTPM_PORT, TCTI $TPM2_PKCS11_TCTI, store $TPM2_PKCS11_STORE"
else
  step "Creating a throwaway SoftHSM2 token (softhsm-setup/softhsm-setup.sh)"
  # NAME=value lines, exported as they are (eval would cut the token URI at its ';').
  token_env="$(softhsm-setup/softhsm-setup.sh "$run/token" --label demo-agent \
          --init-tool "$bin/softhsm-setup/softhsm-token-init")"
  while IFS='=' read -r k v; do export "$k=$v"; done <<< "$token_env"
fi
echo "token: $MTLS_PKCS11_TOKEN_URI  module: $MTLS_PKCS11_MODULE"

step "Starting the partner sandbox: dev CA, EST server, OAuth AS, partner API (loopback, free ports)"
umask 077
printf 'demo-agent:%s\n' "$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')" > "$run/est-basic"
"$bin/tests/sandbox/partner-sandbox" --ca-dir "$run/sandbox-ca" --info-file "$run/sandbox.json" \
  --est-credentials "$run/est-basic" --cert-validity 3600 --log-level warning > "$run/sandbox.log" 2>&1 &
pids+=($!)
wait_for 10 "the sandbox's info file" test -s "$run/sandbox.json"
j() { jq -r "$1" "$run/sandbox.json"; }
est_url="$(j .est.url | sed 's|/.well-known/est$||')"
echo "EST $est_url   AS $(j .as.issuer)   partner API $(j .api.url)"

step "Writing the agent's config ($run/mtls-agent.toml)"
port=18480
. scripts/agent-toml.sh
{ agent_toml_base "$run/state" "$est_url" "$run/sandbox-ca/ca-bundle.pem" "$run/est-basic" \
    demo-host.example
  cat <<TOML
organization = "Example Corp"
organizational_unit = "payments"
dns_names = ["demo-host.example"]

[oauth]
issuer = "$(j .as.issuer)"
ca_file = "$run/sandbox-ca/ca-bundle.pem"

[[oauth.profiles]]
name = "partner"
client_id = "demo-agent"

[[routes]]
name = "partner"
path_prefix = "/partner/"
upstream = "$(j .api.url)/"
ca_file = "$run/sandbox-ca/ca-bundle.pem"
token_profile = "partner"

[listener]
addresses = ["127.0.0.1:$port"]

[admin]
socket = "$run/admin.sock"
TOML
} > "$run/mtls-agent.toml"
"$bin/agent/mtls-agent" --check-config --config "$run/mtls-agent.toml" >/dev/null

step "Starting mtls-agent: key pair generated on the token, EST enrollment"
"$bin/agent/mtls-agent" --config "$run/mtls-agent.toml" > "$run/agent.log" 2>&1 &
pids+=($!)
ctl() { "$bin/agent/mtls-agentctl" --socket "$run/admin.sock" "$@"; }
healthy() { ctl status >/dev/null 2>&1; }
wait_for 30 "the agent to enroll (see $run/agent.log)" healthy
grep -E 'event=(pkcs11.key_generated|est.enrolled|renewal.step step=publish)' "$run/agent.log" | sed 's/^/  /'

step "Calling the partner through the agent: curl http://127.0.0.1:$port/partner/api/secure/data"
answer="$(curl -sS --max-time 20 "http://127.0.0.1:$port/partner/api/secure/data")"
echo "$answer" | jq -e .client_certificate >/dev/null 2>&1 || die "unexpected answer: $answer"
echo "$answer" | jq -r '
  "The partner saw this client certificate:",
  "  CN:        \(.client_certificate.common_name)",
  "  O:         \(.client_certificate.organization)",
  "  OU:        \(.client_certificate.organizational_unit)",
  "  serial:    \(.client_certificate.serial)",
  "  validity:  \(.client_certificate.not_before) .. \(.client_certificate.not_after)",
  "  TLS:       \(.tls.version)",
  "and an access token (client_id \(.token.client_id)):",
  "  token valid: \(if .token.valid then "yes" else "no" end)",
  "  token bound to this certificate: \(if .token.bound_to_this_certificate then "yes" else "no" end)"'

step "mtls-agentctl status"
ctl status || true

echo
echo "Done in $(( $(date +%s) - t0 )) s after the build."
if [ "$keep" = 1 ]; then
  cat <<MSG

Left running (sandbox pid ${pids[0]}, agent pid ${pids[1]}):
  curl http://127.0.0.1:$port/partner/api/secure/data
  curl http://127.0.0.1:$port/partner/echo/headers
  $bin/agent/mtls-agentctl --socket $run/admin.sock status
  $bin/agent/mtls-agentctl --socket $run/admin.sock rotate --wait
Stop them with: kill ${pids[*]}$( [ "$tpm" = 1 ] && printf '; %s' "softhsm-setup/tpm-setup.sh $run/token --stop")
MSG
fi
