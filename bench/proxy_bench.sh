#!/usr/bin/env bash
# proxy_bench.sh — the loopback proxy (mtls-agent, client key on a SoftHSM2 token) against
# nginx and haproxy doing the same job: plain HTTP in on 127.0.0.1, mutual TLS out to the
# partner sandbox's API, keep-alive upstream pools, one worker / thread each (WORKERS=N: N
# each). nginx and haproxy get a client certificate from the same CA
# with an EC P-256 key in a file (the agent's key is on the token and cannot be copied).
#
# Scenarios, each run ROUNDS times, interleaved (all proxies run side by side; each
# scenario runs on each proxy in turn, the order rotating every round), medians:
#   small    GET /echo/status/200, wrk 64 connections: requests/s and p99 latency (and the
#            proxy's CPU time per request, which other load on the machine disturbs less)
#   get64k   GET /echo/bytes/65536, GET64K_CONNS connections (default 64, as issue #21 judges
#            it): requests/s, MiB/s downloaded and the proxy's CPU time per response
#   post1m   POST 1 MiB to /echo/status/200 (the partner reads and drops it), 8 connections:
#            MiB/s uploaded
#   hshake   GET /echo/status/200?close=1 (the partner closes after every answer, so every
#            request needs a new upstream TLS connection; resumption allowed), 16 connections
# and the resident memory (VmRSS, all processes of the proxy) idle after start and while
# holding 1,000 idle keep-alive client connections.
#
#   bench/proxy_bench.sh              (needs: scripts/deps.sh --bench; a default-preset build)
#   ROUNDS=5 DURATION=10 bench/proxy_bench.sh
#   PROXIES="agent" PERF=1 KEEP=1 bench/proxy_bench.sh
#       only the agent, with `perf record -g` of it during each small-GET run
#       (then: perf report -i $run/perf-agent-ROUND.data)
#   PROXIES="agent haproxy" PERF=trace SCENARIOS=small ROUNDS=1 bench/proxy_bench.sh
#       only the small-GET runs, with `perf trace -s` of the proxy (system calls per kind,
#       in $run/perf-PROXY-ROUND.log; the summary line gives them per request)
#   PERF_SCENARIO=get64k (or hshake) with PERF=1|trace: profile that scenario instead
#   AGENT_BEFORE=/path/to/old/mtls-agent PROXIES="agent before haproxy" SCENARIOS=small \
#   bench/proxy_bench.sh
#       an older agent binary ("before") side by side with this one, same token (its own
#       label prefix and state), interleaved like the others: a change's cost per request
#   TOKEN=tpm PROXIES=agent SCENARIOS=hshake bench/proxy_bench.sh
#       the agent's key in a TPM instead (tpm2-pkcs11 on swtpm behind tpm2-abrmd,
#       softhsm-setup/tpm-setup.sh); adds the TPM processes' CPU per request and, for every
#       agent, how many upstream handshakes were full (a token signature each) or resumed
#   MODE=icount bench/proxy_bench.sh   (needs valgrind)
#       instead of the wrk runs: each proxy alone, a fixed number of requests per scenario
#       (bench/fixed_load.py; IC_SMALL=2000 IC_GET64K=500 IC_HSHAKE=500 requests, small at
#       16 connections, 64 KiB at 64, new-connection at 16): user-space instructions per
#       request under callgrind (instrumented only while the measured requests run) and
#       their memcpy/memmove part (and, for small and get64k, the count without the upstream
#       handshakes that fell into the measured window: their inclusive cost taken out, with
#       how many there were), page faults per response (minflt of a native run), the
#       RSS after the 64 KiB scenario (with its pooled upstream connections), the
#       partner's count of resumed handshakes, and memory per idle client connection
#       (RSS delta with IDLE_CONNS=1000 idle keep-alive connections). Counts, so noise-free
#       on a shared machine, unlike CPU time. SCENARIOS="small get64k hshake idle" picks.
#   REVOCATION=ocsp AGENT_BEFORE=build/default/agent/mtls-agent PROXIES="agent before" \
#     SCENARIOS=hshake bench/proxy_bench.sh
#       what a revocation check with a cached OCSP answer costs: the sandbox CA puts an OCSP
#       URL and CRL DPs in its certificates, OpenSSL's `openssl ocsp` answers for it; the
#       agent's route checks with revocation = "hard-fail" (after the first fetch every new
#       upstream connection is answered from the cache), "before" is the same binary with
#       revocation = "off", interleaved in one run
#   WORKERS=2: every proxy with 2 workers (agent [listener] workers, nginx worker_processes,
#       haproxy nbthread; default 1)
#   TICKETS=reusable: the partner's TLS 1.3 tickets stateless and reusable (default:
#       single-use, the partner removes a ticket once it resumed a session)
# Prints a Markdown table; raw wrk outputs stay in $MTLS_BENCH_DIR (default: a temp dir that
# is removed, kept with KEEP=1).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root="$(pwd)"
bin="${MTLS_BUILD_DIR:-$root/build/default}"
workers="${WORKERS:-1}"
get64k_conns="${GET64K_CONNS:-64}"
rounds="${ROUNDS:-3}"
duration="${DURATION:-8}"
proxies="${PROXIES:-agent nginx haproxy}"
perf="${PERF:-0}"
perf_scenario="${PERF_SCENARIO:-small}"
scenarios=" ${SCENARIOS:-small get64k post1m hshake idle} "
has() { [[ "$scenarios" == *" $1 "* ]]; }

die() { echo "proxy_bench.sh: $*" >&2; exit 1; }
for t in wrk nginx haproxy jq openssl python3; do
  command -v "$t" >/dev/null || die "$t not found (run scripts/deps.sh --bench)"
done
for b in agent/mtls-agent tests/sandbox/partner-sandbox softhsm-setup/softhsm-token-init; do
  [ -x "$bin/$b" ] || die "$bin/$b missing: cmake --build --preset default --target mtls-agent partner-sandbox softhsm-token-init"
done

run="${MTLS_BENCH_DIR:-$(mktemp -d /tmp/mtls-bench.XXXXXX)}"
mkdir -p "$run"; chmod 700 "$run"
umask 077
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ "${TOKEN:-softhsm}" = tpm ]; then "$root/softhsm-setup/tpm-setup.sh" "$run/token" --stop; fi
  if [ "${KEEP:-0}" = 0 ] && [ -z "${MTLS_BENCH_DIR:-}" ]; then rm -rf "$run"; fi
}
trap cleanup EXIT

# Polls `cond` every 0.1 s until it succeeds or `secs` pass.
wait_for() { local secs="$1" what="$2"; shift 2; local end=$((SECONDS + secs))
  until "$@"; do [ $SECONDS -lt $end ] || die "timed out after ${secs}s waiting for $what"; sleep 0.1; done; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
up() { curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$1/p/echo/status/200"; }

# --- the partner: sandbox API (one I/O thread) -------------------------------------------
# TICKETS=single-use (default): the partner's TLS 1.3 tickets resume once, as servers with
# replay protection have them (a client must not offer one twice, RFC 8446 C.4);
# TICKETS=reusable: stateless tickets (OpenSSL's default), which a client may offer again.
# TICKETS=none: no resumption at all (every upstream handshake full: what resumption saves).
case "${TICKETS:-single-use}" in
  single-use) ticket_flag=--api-single-use-tickets ;;
  reusable) ticket_flag= ;;
  none) ticket_flag=--api-no-tickets ;;
  *) die "TICKETS must be single-use, reusable or none" ;;
esac
# REVOCATION=ocsp: the CA publishes revocation data and `openssl ocsp` answers (started below).
rev_flags=(); route_revocation=""
case "${REVOCATION:-default}" in
  default) ;;
  ocsp) ocsp_port="$(free_port)"; rev_flags=(--revocation --ocsp-url "http://127.0.0.1:$ocsp_port")
        route_revocation='revocation = "hard-fail"' ;;
  *) die "REVOCATION must be default or ocsp" ;;
esac
printf 'bench:%s\n' "$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')" > "$run/est-basic"
"$bin/tests/sandbox/partner-sandbox" --ca-dir "$run/ca" --info-file "$run/sandbox.json" \
  --est-credentials "$run/est-basic" --cert-validity 86400 --log-level error $ticket_flag "${rev_flags[@]}" \
  > "$run/sandbox.log" 2>&1 &
pids+=($!)
sandbox_pid=$!
wait_for 10 "the sandbox" test -s "$run/sandbox.json"
api_url="$(jq -r .api.url "$run/sandbox.json")"
api_port="$(jq -r .api.port "$run/sandbox.json")"
est_url="$(jq -r .est.url "$run/sandbox.json" | sed 's|/.well-known/est$||')"
ca="$run/ca/ca-bundle.pem"
if [ -n "${ocsp_port:-}" ]; then
  jr() { jq -r "$1" "$run/sandbox.json"; }
  openssl ocsp -index "$(jr .revocation.index)" -CA "$(jr .ca.issuing)" \
    -rsigner "$(jr .revocation.ocsp_signer)" -rkey "$(jr .revocation.ocsp_signer_key)" \
    -port "$ocsp_port" -nmin 60 -timeout 5 -ignore_err > "$run/openssl-ocsp.log" 2>&1 &
  pids+=($!)
  wait_for 10 "openssl ocsp" grep -qs "waiting for OCSP client connections" "$run/openssl-ocsp.log"
fi

# --- a file key for nginx and haproxy, issued by the sandbox CA ---------------------------
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=bench-file-key" \
  -keyout "$run/client.key" -out "$run/client.csr" 2>/dev/null
printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n' \
  > "$run/client.ext"
openssl x509 -req -in "$run/client.csr" -CA "$run/ca/issuing-ca.pem" -CAkey "$run/ca/issuing-ca.key" \
  -CAcreateserial -days 1 -sha256 -extfile "$run/client.ext" -out "$run/client.pem" 2>/dev/null
cat "$run/client.pem" "$run/ca/issuing-ca.pem" > "$run/client-chain.pem"
cat "$run/client-chain.pem" "$run/client.key" > "$run/client-haproxy.pem"

# --- mtls-agent: key generated on a SoftHSM2 token, certificate by EST --------------------
tpm_pids=()
if [ "${TOKEN:-softhsm}" = tpm ]; then
  # NAME=value lines (the URI holds a ';': not eval'd), among them tpm2-pkcs11's variables.
  tpm_env="$("$root/softhsm-setup/tpm-setup.sh" "$run/token" --label bench-agent)"
  while IFS='=' read -r k v; do export "$k=$v"; done <<< "$tpm_env"
  tpm_pids=("$(cat "$run/token/run/swtpm.pid")" "$(cat "$run/token/run/abrmd.pid")")
else
  # NAME=value lines, exported as they are (eval would cut the token URI at its ';').
  token_env="$("$root/softhsm-setup/softhsm-setup.sh" "$run/token" --label bench-agent \
          --init-tool "$bin/softhsm-setup/softhsm-token-init")"
  while IFS='=' read -r k v; do export "$k=$v"; done <<< "$token_env"
fi
agent_port="$(free_port)"
metrics_port="$(free_port)"
. "$root/scripts/agent-toml.sh"
{ agent_toml_base "$run/state" "$est_url" "$ca" "$run/est-basic" bench-agent
  cat <<TOML

[[routes]]
name = "p"
path_prefix = "/p/"
upstream = "$api_url/"
ca_file = "$ca"
pool_max = 128
$route_revocation

[listener]
addresses = ["127.0.0.1:$agent_port"]
# The idle scenario holds 1,000 connections from one address: more than the per-caller cap
# derived from a small RLIMIT_NOFILE would allow.
max_connections = 2048
max_connections_per_caller = 2048
workers = $workers

[admin]
socket = "$run/admin.sock"

[logging]
level = "warning"

[metrics]
listen = "127.0.0.1:$metrics_port"
TOML
} > "$run/agent.toml"
"$bin/agent/mtls-agent" --check-config --config "$run/agent.toml" >/dev/null
before_bin="${AGENT_BEFORE:-}"
before_port="$(free_port)"
before_metrics_port="$(free_port)"
if [[ " $proxies " == *" before "* ]]; then
  [ -x "$before_bin" ] || die "PROXIES has \"before\": set AGENT_BEFORE to an older mtls-agent binary"
  sed -e "s|127.0.0.1:$agent_port|127.0.0.1:$before_port|" -e "s|127.0.0.1:$metrics_port|127.0.0.1:$before_metrics_port|" -e "s|$run/admin.sock|$run/admin-before.sock|" \
      -e "s|^state_dir = .*|state_dir = \"$run/state-before\"|" -e "/^max_connections/d" \
      -e 's|^type = "ec-p256"$|type = "ec-p256"\nlabel_prefix = "bench-before"|' \
      -e 's|^revocation = "hard-fail"$|revocation = "off"|' \
      "$run/agent.toml" > "$run/before.toml"
  "$before_bin" --check-config --config "$run/before.toml" >/dev/null
fi

# --- nginx: one worker, keep-alive upstream pool, session reuse (its default) -------------
nginx_port="$(free_port)"
mkdir -p "$run/nginx"
cat > "$run/nginx/nginx.conf" <<NGINX
daemon off;
user root;
worker_processes $workers;
pid $run/nginx/nginx.pid;
error_log $run/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $run/nginx/body;
  proxy_temp_path $run/nginx/proxy;
  fastcgi_temp_path $run/nginx/fcgi; uwsgi_temp_path $run/nginx/uwsgi; scgi_temp_path $run/nginx/scgi;
  client_max_body_size 0;
  keepalive_requests 1000000;
  upstream partner { server 127.0.0.1:$api_port; keepalive 128; keepalive_requests 1000000; }
  server {
    listen 127.0.0.1:$nginx_port;
    location /p/ {
      proxy_pass https://partner/;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host 127.0.0.1:$api_port;
      proxy_ssl_certificate $run/client-chain.pem;
      proxy_ssl_certificate_key $run/client.key;
      proxy_ssl_trusted_certificate $ca;
      proxy_ssl_verify on;
      proxy_ssl_name localhost;
      proxy_ssl_server_name on;
      proxy_ssl_protocols TLSv1.3;
      proxy_ssl_session_reuse on;
      proxy_buffering off;
      proxy_request_buffering off;
    }
  }
}
NGINX

# --- haproxy: one thread, always reuse idle server connections ----------------------------
haproxy_port="$(free_port)"
cat > "$run/haproxy.cfg" <<HAPROXY
global
  nbthread $workers
  maxconn 8192
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  timeout http-keep-alive 60s
  http-reuse always
frontend fe
  bind 127.0.0.1:$haproxy_port
  default_backend partner
backend partner
  http-request replace-path ^/p/(.*) /\1
  http-request set-header Host 127.0.0.1:$api_port
  server api 127.0.0.1:$api_port ssl verify required ca-file $ca crt $run/client-haproxy.pem sni str(localhost) verifyhost localhost ssl-min-ver TLSv1.3 pool-max-conn 128
HAPROXY
haproxy -c -q -f "$run/haproxy.cfg" || die "haproxy rejected $run/haproxy.cfg"

# --- start / stop ------------------------------------------------------------------------
declare -A port=([agent]=$agent_port [before]=$before_port [nginx]=$nginx_port [haproxy]=$haproxy_port)
declare -A title=([agent]="mtls-agent (token key)" [before]="mtls-agent before (token key)"
                  [nginx]="nginx (file key)" [haproxy]="haproxy (file key)")
if [ -n "${ocsp_port:-}" ]; then
  title[agent]="mtls-agent, revocation hard-fail (cached OCSP)"; title[before]="mtls-agent, revocation off"
fi
declare -A pid=()
# wrap: a command the proxy runs under (MODE=icount: valgrind), and nginx then without its
# master process (one process to count).
wrap=()
nginx_conf="$run/nginx/nginx.conf"
start() {
  case "$1" in
    agent) "${wrap[@]}" "$bin/agent/mtls-agent" --config "$run/agent.toml" > "$run/agent.log" 2>&1 & ;;
    before) "${wrap[@]}" "$before_bin" --config "$run/before.toml" > "$run/before.log" 2>&1 & ;;
    nginx) "${wrap[@]}" nginx -c "$nginx_conf" -e "$run/nginx/error.log" > "$run/nginx.out" 2>&1 & ;;
    haproxy) "${wrap[@]}" haproxy -db -f "$run/haproxy.cfg" > "$run/haproxy.log" 2>&1 & ;;
  esac
  pid[$1]=$!
  pids+=("${pid[$1]}")
  wait_for "${start_wait:-60}" "$1 on port ${port[$1]}" up "${port[$1]}"
}
stop() { kill "${pid[$1]}" 2>/dev/null || true; wait "${pid[$1]}" 2>/dev/null || true; }
# sum_proc PID FILE AWK: the AWK value of /proc/P/FILE summed over PID and its children
# (nginx's master + worker).
sum_proc() {
  local total=0 p
  for p in "$1" $(pgrep -P "$1" || true); do
    total=$((total + $(awk "$3" "/proc/$p/$2" 2>/dev/null || echo 0)))
  done
  echo "$total"
}
rss_kib() { sum_proc "$1" status '/^VmRSS:/ {print $2}'; }         # resident KiB
cpu_ticks() { sum_proc "$1" stat '{print $14 + $15}'; }            # user + system clock ticks
tick_us=$((1000000 / $(getconf CLK_TCK)))
# CPU ticks of the TPM's processes (swtpm + tpm2-abrmd; TOKEN=tpm), 0 otherwise.
tpm_ticks() { local t=0 p; for p in "${tpm_pids[@]}"; do t=$((t + $(cpu_ticks "$p"))); done; echo "$t"; }

cat > "$run/post1m.lua" <<'LUA'
wrk.method = "POST"
wrk.body = string.rep("x", 1048576)
wrk.headers["Content-Type"] = "application/octet-stream"
LUA

# wrk_run NAME PROXY CONNECTIONS PATH [wrk args…] -> raw output in $run/NAME-PROXY-ROUND.txt
# A second of the same load first, not measured: the proxies sit idle while the others are
# measured, and the partner may have closed their pooled connections meanwhile.
warm() {
  local who="$1" conns="$2" path="$3"; shift 3
  wrk -t1 -c"$conns" -d1s "$@" "http://127.0.0.1:${port[$who]}/p$path" >/dev/null 2>&1 || true
}
wrk_run() {
  local name="$1" who="$2" conns="$3" path="$4"; shift 4
  [ "${warmed:-0}" = 1 ] || warm "$who" "$conns" "$path" "$@"
  /usr/bin/time -f 'user %U\nsystem %S' -o "$run/$name-$who-$round.time" \
    wrk -t1 -c"$conns" -d"${duration}s" --latency "$@" "http://127.0.0.1:${port[$who]}/p$path" \
    > "$run/$name-$who-$round.txt" 2>&1 || true
}
# wrk_cpu NAME PROXY …: wrk_run, and the proxy's CPU µs per request in res[PROXY,NAME_cpu,round]
# (less sensitive to other load on the machine than requests/s).
wrk_cpu() {
  local c0 c1 n perf_pid=""
  warm "$2" "$3" "$4" "${@:5}"
  if [ "$perf" != 0 ] && [ "$1" = "$perf_scenario" ]; then
    local -a pids_of=("${pid[$2]}" $(pgrep -P "${pid[$2]}" || true))
    local plist; plist=$(IFS=,; echo "${pids_of[*]}")
    if [ "$perf" = trace ]; then
      perf trace -s -p "$plist" -o "$run/perf-$2-$round.log" > /dev/null 2>&1 &
    else
      perf record -g -o "$run/perf-$2-$round.data" -p "$plist" > "$run/perf-$2-$round.log" 2>&1 &
    fi
    perf_pid=$!
  fi
  c0=$(cpu_ticks "${pid[$2]}"); s0=$(cpu_ticks "$sandbox_pid"); read -r -a m0 < <(head -1 /proc/stat)
  t0=$(tpm_ticks)
  warmed=1 wrk_run "$@"
  c1=$(cpu_ticks "${pid[$2]}"); s1=$(cpu_ticks "$sandbox_pid"); read -r -a m1 < <(head -1 /proc/stat)
  t1=$(tpm_ticks)
  if [ -n "$perf_pid" ]; then kill -INT "$perf_pid"; wait "$perf_pid" || true; fi
  n=$(awk '/requests in/ {print $1}' "$run/$1-$2-$round.txt")
  if [ "$perf" = trace ] && [ "$1" = "$perf_scenario" ] && [ -n "$n" ]; then
    echo "$2 round $round: system calls per request: $(awk -v n="$n" '$2 ~ /^[0-9]+$/ && NF >= 8 {c[$1] += $2} END {for (k in c) if (c[k] / n >= 0.05) printf "%s %.2f  ", k, c[k] / n}' "$run/perf-$2-$round.log")" \
      | tee -a "$run/syscalls.txt"
  fi
  res[$2,$1_cpu,$round]=$(awk -v t=$((c1 - c0)) -v u="$tick_us" -v n="${n:-0}" 'BEGIN {if (n > 0) printf "%.0f", t * u / n; else print "-"}')
  if [ ${#tpm_pids[@]} -gt 0 ] && [[ "$2" == agent || "$2" == before ]]; then
    res[$2,$1_tpmcpu,$round]=$(awk -v t=$((t1 - t0)) -v u="$tick_us" -v n="${n:-0}" 'BEGIN {if (n > 0) printf "%.0f", t * u / n; else print "-"}')
  fi
  res[$2,$1_pcpu,$round]=$(awk -v t=$((s1 - s0)) -v u="$tick_us" -v n="${n:-0}" 'BEGIN {if (n > 0) printf "%.0f", t * u / n; else print "-"}')
  res[$2,$1_wcpu,$round]=$(awk -v n="${n:-0}" -v u="$tick_us" 'BEGIN {if (n > 0) printf "%.0f", ('"$(awk '/user|system/ {s+=$2} END {print s+0}' "$run/$1-$2-$round.time" 2>/dev/null || echo 0)"') * 1e6 / n; else print "-"}')
  res[$2,$1_idle,$round]=$(awk -v i=$(( ${m1[4]} + ${m1[5]} - ${m0[4]} - ${m0[5]} )) -v t=$(( ${m1[1]}+${m1[2]}+${m1[3]}+${m1[4]}+${m1[5]}+${m1[6]}+${m1[7]}+${m1[8]} - ${m0[1]}-${m0[2]}-${m0[3]}-${m0[4]}-${m0[5]}-${m0[6]}-${m0[7]}-${m0[8]} )) 'BEGIN {if (t > 0) printf "%.0f", 100 * i / t; else print "-"}')
}
# Values from a wrk output: requests/s, p99 in ms, transfer MiB/s, non-2xx + socket errors.
wrk_rps() { [ -f "$1" ] && awk '/^Requests\/sec:/ {print $2}' "$1" || true; }
wrk_p99() { [ -f "$1" ] || return 0; awk '$1=="99%" {v=$2; if (v ~ /us$/) {sub("us","",v); v/=1000} else if (v ~ /ms$/) {sub("ms","",v)} else if (v ~ /s$/) {sub("s","",v); v*=1000}; print v}' "$1"; }
wrk_errors() { [ -f "$1" ] || { echo 0; return; }; awk '/Non-2xx/ {n+=$NF} /Socket errors/ {gsub(",",""); n+=$4+$6+$8+$10} END {print n+0}' "$1"; }

# 1,000 idle keep-alive connections, one request each, then held while RSS is read.
# (The script is an argument: standard input is what tells it to stop.)
hold_idle() {
  python3 -c "$(cat <<'PY'
import os, socket, sys, time
port, out = int(sys.argv[1]), sys.argv[2]
socks = []
for _ in range(int(os.environ.get("IDLE_N", "1000"))):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /p/echo/status/200 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    data = b""
    while b'{"status":200}' not in data:
        chunk = s.recv(4096)
        if not chunk: raise SystemExit("closed early")
        data += chunk
    socks.append(s)
open(out, "w").write("ready\n")
sys.stdin.read()  # hold until told to stop
PY
)" "$1" "$2"
}

echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load before: $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$run/summary.md"
echo "# nginx $(nginx -v 2>&1 | cut -d/ -f2), $(haproxy -v | head -1 | cut -d' ' -f1-3), $(openssl version), rounds=$rounds, ${duration}s per wrk run" | tee -a "$run/summary.md"

# --- MODE=icount: each proxy alone, a fixed number of requests per scenario ----------------
# User-space instructions per request (callgrind: the proxy runs under valgrind with
# instrumentation off, which is switched on for exactly the measured requests), page faults
# per response (minflt of a native run, /proc/PID/stat), the share of resumed upstream
# handshakes (the partner's own counters) and memory per idle client connection (RSS delta
# with IDLE_CONNS idle keep-alive connections / IDLE_CONNS). Instruction and page-fault
# counts do not depend on what else the machine runs; CPU time does, and is not reported here.
if [ "${MODE:-}" = icount ]; then
  command -v valgrind >/dev/null && command -v callgrind_control >/dev/null \
    || die "MODE=icount needs valgrind (apt-get install valgrind)"
  sed -e 's/^daemon off;/daemon off;\nmaster_process off;/' "$run/nginx/nginx.conf" > "$run/nginx/single.conf"
  nginx_conf="$run/nginx/single.conf"  # one process (master and worker in one) for both runs
  ic_small="${IC_SMALL:-2000}"; ic_get64k="${IC_GET64K:-500}"; ic_hshake="${IC_HSHAKE:-500}"
  idle_conns="${IDLE_CONNS:-1000}"
  declare -A ic_path=([small]=/p/echo/status/200 [get64k]=/p/echo/bytes/65536 [hshake]="/p/echo/status/200?close=1")
  declare -A ic_conns=([small]=16 [get64k]=64 [hshake]=16)
  declare -A ic_n=([small]=$ic_small [get64k]=$ic_get64k [hshake]=$ic_hshake)
  ic_scen="${SCENARIOS:-small get64k hshake idle}"
  load() { python3 "$root/bench/fixed_load.py" "${port[$1]}" "${ic_path[$2]}" "${ic_conns[$2]}" "$3"; }
  minflt() { sum_proc "$1" stat '{print $10}'; }
  partner() { curl -sf --cacert "$ca" --cert "$run/client-chain.pem" --key "$run/client.key" "$@"; }
  handshakes() { partner "$api_url/sandbox/stats" | jq -r '.services.api | "\(.full_handshakes) \(.resumed_handshakes)"'; }
  declare -A ic=()
  read -r -a order <<< "$proxies"
  for who in "${order[@]}"; do
    # Native run: page faults per response, resumption, idle memory.
    wrap=(); start_wait=60; start "$who"
    # Idle connections first, before the load scenarios grow the heap (memory freed by them
    # would hide what an idle connection costs).
    if [[ " $ic_scen " == *" idle "* ]]; then
      rm -f "$run/idle-ready"; mkfifo "$run/idle-hold.$who"
      load "$who" small 50 > /dev/null || true  # one upstream connection, the first request
      rss0=$(rss_kib "${pid[$who]}")
      IDLE_N="$idle_conns" hold_idle "${port[$who]}" "$run/idle-ready" < "$run/idle-hold.$who" &
      holder=$!
      exec 9> "$run/idle-hold.$who"
      wait_for 120 "$idle_conns idle connections to $who" test -s "$run/idle-ready"
      rss1=$(rss_kib "${pid[$who]}")
      exec 9>&-
      wait "$holder" || true
      ic[$who,idle]=$(awk -v d=$((rss1 - rss0)) -v n="$idle_conns" 'BEGIN {printf "%.2f", d / n}')
      ic[$who,rss_idle]=$rss0
    fi
    for s in small get64k hshake; do
      [[ " $ic_scen " == *" $s "* ]] || continue
      load "$who" "$s" 200 > /dev/null || true  # warm: pools, sessions, allocator
      read -r f0 r0 < <(handshakes)
      m0=$(minflt "${pid[$who]}")
      load "$who" "$s" "${ic_n[$s]}" > "$run/ic-native-$s-$who.txt" || true
      m1=$(minflt "${pid[$who]}")
      read -r f1 r1 < <(handshakes)  # (its own query is one more full handshake)
      ic[$who,$s,pf]=$(awk -v d=$((m1 - m0)) -v n="${ic_n[$s]}" 'BEGIN {printf "%.2f", d / n}')
      ic[$who,$s,rss]=$(rss_kib "${pid[$who]}")  # get64k: with its 64 pooled upstream connections
      if [ "$s" = hshake ]; then
        ic[$who,resumed]=$(awk -v f=$((f1 - f0 - 1)) -v r=$((r1 - r0)) 'BEGIN {if (f + r > 0) printf "%.1f %% of %d", 100 * r / (f + r), f + r; else print "-"}')
      fi
    done
    stop "$who"
    [[ " $ic_scen " == *" small "* || " $ic_scen " == *" get64k "* || " $ic_scen " == *" hshake "* ]] || {
      echo "$who: idle ${ic[$who,idle]:--} KiB/conn" | tee -a "$run/rounds.txt"; continue; }
    # Callgrind run: instructions per request, and the memcpy/memmove share of them.
    wrap=(valgrind --tool=callgrind --instr-atstart=no --dump-instr=no
          "--callgrind-out-file=$run/cg-$who.out")
    start_wait=300; start "$who"
    for s in small get64k hshake; do
      [[ " $ic_scen " == *" $s "* ]] || continue
      load "$who" "$s" 100 > /dev/null || true  # warm, uninstrumented
      callgrind_control -i on "${pid[$who]}" > /dev/null
      callgrind_control -z "${pid[$who]}" > /dev/null
      load "$who" "$s" "${ic_n[$s]}" > "$run/ic-cg-$s-$who.txt" || true
      callgrind_control -d "ic-$s" "${pid[$who]}" > /dev/null
      callgrind_control -i off "${pid[$who]}" > /dev/null
      dump=$(ls -t "$run/cg-$who.out".* | head -1)
      callgrind_annotate --inclusive=no "$dump" > "$run/cg-$s-$who.txt" 2>/dev/null || true
      total=$(awk '/^(summary|totals):/ {print $2; exit}' "$dump")
      # Self cost of the memcpy/memmove functions (the function lines of the listing, not
      # the "=> calls" lines of its source annotation).
      copies=$(awk '$1 ~ /^[0-9,]+$/ && $0 !~ /=>/ && $0 ~ /:__(memcpy|memmove)[_a-z]*( |$)/ {gsub(",", "", $1); s += $1} END {print s + 0}' "$run/cg-$s-$who.txt")
      ic[$who,$s,ir]=$(awk -v t="$total" -v n="${ic_n[$s]}" 'BEGIN {printf "%.0f", t / n}')
      ic[$who,$s,copy]=$(awk -v t="$copies" -v n="${ic_n[$s]}" 'BEGIN {printf "%.0f", t / n}')
      # Upstream handshakes inside the measured window (a pool still opening connections
      # after the warm-up, ~1 M instructions each) move a keep-alive scenario's count by
      # thousands per request between runs: the count without them (their inclusive cost).
      if [ "$s" != hshake ]; then
        hs=$(callgrind_annotate --inclusive=yes --tree=caller "$dump" 2>/dev/null |
          awk '/\*  .*:SSL_do_handshake / && !f {gsub(",", "", $1); print $1; f = 1}') || true
        hs_n=$(callgrind_annotate --inclusive=yes --tree=caller "$dump" 2>/dev/null |
          awk '/^ *$/ {n = 0; next}  # its callers, with their call counts, precede its line
               /\*  .*:SSL_do_handshake / && !f {print n + 0; f = 1}
               {if (match($0, /\(([0-9,]+)x\)/)) {v = substr($0, RSTART + 1, RLENGTH - 3); gsub(",", "", v); n += v}}') || true
        ic[$who,$s,nohs]=$(awk -v t="$total" -v h="${hs:-0}" -v c="$hs_n" -v n="${ic_n[$s]}" 'BEGIN {printf "%.0f (%d in the window)", (t - h) / n, c}')
      fi
    done
    stop "$who"
    echo "$who: $(for s in small get64k hshake; do printf '%s %s Ir/req (memcpy %s) %s pf/resp; ' "$s" "${ic[$who,$s,ir]:--}" "${ic[$who,$s,copy]:--}" "${ic[$who,$s,pf]:--}"; done)resumed ${ic[$who,resumed]:--}, idle ${ic[$who,idle]:--} KiB/conn" | tee -a "$run/rounds.txt"
  done
  {
    echo
    echo "Instruction counts (callgrind, user space, the proxy process only) and page faults are"
    echo "counts, not times: other load on the machine does not change them. CPU time would."
    echo
    printf '| per request (fixed count) |'; for who in "${order[@]}"; do printf ' %s |' "${title[$who]}"; done; echo
    printf '| --- |'; for who in "${order[@]}"; do printf ' --- |'; done; echo
    irow() { printf '| %s |' "$1"; for who in "${order[@]}"; do printf ' %s |' "${ic[$who,$2]:--}"; done; echo; }
    irow "small GET (c${ic_conns[small]}, $ic_small req): instructions" small,ir
    irow "small GET: instructions without upstream handshakes (handshakes)" small,nohs
    irow "small GET: of which memcpy/memmove" small,copy
    irow "small GET: page faults" small,pf
    irow "64 KiB GET (c${ic_conns[get64k]}, $ic_get64k req): instructions" get64k,ir
    irow "64 KiB GET: instructions without upstream handshakes (handshakes)" get64k,nohs
    irow "64 KiB GET: of which memcpy/memmove" get64k,copy
    irow "64 KiB GET: page faults" get64k,pf
    irow "RSS after the 64 KiB GETs (${ic_conns[get64k]} pooled upstream connections): KiB" get64k,rss
    irow "new upstream connection per request (c${ic_conns[hshake]}, $ic_hshake req): instructions" hshake,ir
    irow "new connection: page faults" hshake,pf
    irow "new connection: upstream handshakes resumed (partner's count)" resumed
    irow "memory per idle client connection ($idle_conns held): KiB" idle
    irow "RSS before: KiB" rss_idle
  } | tee -a "$run/summary.md"
  exit 0
fi

declare -A res=()
# All proxies run side by side (idle when not measured) and the runs interleave at the
# scenario level, in an order that rotates every round: a noisy minute on the machine then
# hits every proxy a little instead of one proxy's whole round.
read -r -a order <<< "$proxies"
for who in "${order[@]}"; do start "$who"; done
sleep 1  # let start-up settle before the idle reading (not a readiness wait: start() polled)
for who in "${order[@]}"; do
  res[$who,rss_idle,1]=$(rss_kib "${pid[$who]}")
  wrk -t1 -c64 -d2s "http://127.0.0.1:${port[$who]}/p/echo/status/200" >/dev/null 2>&1 || true  # warm-up
done
for round in $(seq 1 "$rounds"); do
  shift_by=$(( (round - 1) % ${#order[@]} ))
  rotated=("${order[@]:$shift_by}" "${order[@]:0:$shift_by}")
  if has small; then for who in "${rotated[@]}"; do wrk_cpu small "$who" 64 /echo/status/200; done; fi
  if has get64k; then for who in "${rotated[@]}"; do wrk_cpu get64k "$who" "$get64k_conns" /echo/bytes/65536; done; fi
  if has post1m; then for who in "${rotated[@]}"; do wrk_run post1m "$who" 8 /echo/status/200 -s "$run/post1m.lua"; done; fi
  if has hshake; then for who in "${rotated[@]}"; do wrk_cpu hshake "$who" 16 "/echo/status/200?close=1"; done; fi
  for who in "${order[@]}"; do
    f="$run/small-$who-$round.txt"
    res[$who,small_rps,$round]=$(wrk_rps "$f"); res[$who,small_p99,$round]=$(wrk_p99 "$f")
    res[$who,small_err,$round]=$(wrk_errors "$f")
    res[$who,get64k_rps,$round]=$(wrk_rps "$run/get64k-$who-$round.txt")
    res[$who,get64k_p99,$round]=$(wrk_p99 "$run/get64k-$who-$round.txt")
    res[$who,get64k,$round]=$(awk -v r="${res[$who,get64k_rps,$round]}" 'BEGIN {if (r != "") print r*65536/1048576}')
    res[$who,get64k_err,$round]=$(wrk_errors "$run/get64k-$who-$round.txt")
    res[$who,post1m,$round]=$(wrk_rps "$run/post1m-$who-$round.txt")
    res[$who,post1m_err,$round]=$(wrk_errors "$run/post1m-$who-$round.txt")
    res[$who,hshake,$round]=$(wrk_rps "$run/hshake-$who-$round.txt")
    res[$who,hshake_err,$round]=$(wrk_errors "$run/hshake-$who-$round.txt")
    echo "round $round $who: small ${res[$who,small_rps,$round]} req/s p99 ${res[$who,small_p99,$round]} ms," \
      "64k ${res[$who,get64k,$round]} MiB/s, 1m POST ${res[$who,post1m,$round]} MiB/s," \
      "handshake-bound ${res[$who,hshake,$round]} req/s, CPU/request ${res[$who,small_cpu,$round]:-}/${res[$who,hshake_cpu,$round]:-} µs," \
      "errors ${res[$who,small_err,$round]}/${res[$who,get64k_err,$round]}/${res[$who,post1m_err,$round]}/${res[$who,hshake_err,$round]}" \
      | tee -a "$run/rounds.txt"
  done
done
# The agent's upstream handshakes, full and resumed (its /metrics), before it is stopped.
hs() { curl -s --max-time 5 "http://127.0.0.1:$metrics_port/metrics" | awk -v k="$1" \
  '$1 ~ /^mtls_agent_upstream_handshakes_total/ && $1 ~ "kind=\"" k "\"" {n += $2} END {print n + 0}'; }
hs_full=""; hs_resumed=""
if [[ " $proxies " == *" agent "* ]]; then hs_full=$(hs full); hs_resumed=$(hs resumed); fi
# Memory with 1,000 idle keep-alive connections, one proxy at a time.
for who in "${order[@]}"; do
  if has idle; then
    rm -f "$run/idle-ready"
    mkfifo "$run/idle-hold.$who"
    hold_idle "${port[$who]}" "$run/idle-ready" < "$run/idle-hold.$who" &
    holder=$!
    exec 9> "$run/idle-hold.$who"
    wait_for 60 "1,000 idle connections to $who" test -s "$run/idle-ready"
    res[$who,rss_1000,1]=$(rss_kib "${pid[$who]}")
    exec 9>&-
    wait "$holder" || true
  fi
  echo "$who: RSS idle ${res[$who,rss_idle,1]} KiB, with 1,000 idle connections ${res[$who,rss_1000,1]:-} KiB" | tee -a "$run/rounds.txt"
  stop "$who"
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{v[NR]=$1} END {if (NR==0) print "-"; else if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }
med() { local who="$1" key="$2" vals="" r; for r in $(seq 1 "$rounds"); do vals+="${res[$who,$key,$r]:-} "; done; echo "$vals" | median; }
{
  echo
  printf '| scenario |'; for who in "${order[@]}"; do printf ' %s |' "${title[$who]}"; done; echo
  printf '| --- |'; for who in "${order[@]}"; do printf ' --- |'; done; echo
  row() { printf '| %s |' "$1"; for who in "${order[@]}"; do printf ' %s |' "$(med "$who" "$2")"; done; echo; }
  row "small GET, 64 conns: req/s" small_rps
  row "small GET, 64 conns: p99 ms" small_p99
  row "small GET: proxy CPU µs/request" small_cpu
  row "small GET: partner CPU µs/request" small_pcpu
  row "small GET: wrk CPU µs/request" small_wcpu
  row "small GET: machine idle %" small_idle
  row "64 KiB GET, $get64k_conns conns: req/s" get64k_rps
  row "64 KiB GET, $get64k_conns conns: p99 ms" get64k_p99
  row "64 KiB GET: MiB/s" get64k
  row "64 KiB GET: proxy CPU µs/request" get64k_cpu
  row "1 MiB POST, 8 conns: MiB/s" post1m
  row "handshake-bound, 16 conns: req/s" hshake
  row "handshake-bound: proxy CPU µs/request" hshake_cpu
  if [ ${#tpm_pids[@]} -gt 0 ]; then row "handshake-bound: TPM CPU µs/request (swtpm + tpm2-abrmd)" hshake_tpmcpu; fi
  row "RSS idle: KiB" rss_idle
  row "RSS with 1,000 idle conns: KiB" rss_1000
  echo
  errs() { local n=0 r k; for r in $(seq 1 "$rounds"); do for k in small_err get64k_err post1m_err hshake_err; do
    n=$((n + ${res[$1,$k,$r]:-0})); done; done; echo "$n"; }
  echo "non-2xx answers + socket errors over all wrk runs: $(for who in "${order[@]}"; do printf '%s %s  ' "$who" "$(errs "$who")"; done)"
  if [ -n "$hs_full" ]; then
    echo "agent upstream handshakes over the whole run: $hs_full full (one token signature each), $hs_resumed resumed (no signature)"
  fi
  echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee -a "$run/summary.md"
