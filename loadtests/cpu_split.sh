#!/usr/bin/env bash
# S1 (small GETs over HTTP/1.1, wrk -t2 -c64) through kubeguard and through haproxy in turn,
# with the whole machine's CPU per request split by process: the proxy, the fake upstream, wrk,
# idle, all; and context switches per request. Shows what a proxy costs its neighbours on the
# same cores, which the harness's own table (the proxy's CPU only) does not. Needs the harness's
# release binaries (../shared/perf), wrk and haproxy.
#
#   bash loadtests/cpu_split.sh                  # 3 rounds of 5 s each, alternating
#   TOKEN=abc ROUNDS=5 bash loadtests/cpu_split.sh  # every request with a bearer token and an
#                                                   # Audit-ID, as kubectl's and client-go's
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${PERF_HARNESS:-$ROOT/../shared/perf}/target/release"
[ -x "$BIN/fake-apiserver" ] || { echo "no $BIN/fake-apiserver: build the harness first" >&2; exit 1; }
for tool in wrk haproxy; do
  command -v "$tool" >/dev/null || { echo "$tool not found (apt-get install $tool)" >&2; exit 1; }
done
cargo build --release --locked --manifest-path "$ROOT/Cargo.toml" -q
UP_PORT=18980 KG_PORT=18981 HAP_PORT=18982
WORK="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
# shellcheck source=loadtests/fake_upstream.sh
. "$ROOT/loadtests/fake_upstream.sh"
start_fake_upstream "$BIN" "$UP_PORT" "$WORK"
up=${pids[0]}
cat >"$WORK/haproxy.cfg" <<CFG
global
  nbthread 2
  maxconn 8000
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  option http-no-delay
frontend fe
  bind 127.0.0.1:$HAP_PORT
  default_backend be
backend be
  http-reuse always
  server s1 127.0.0.1:$UP_PORT maxconn 8000
CFG
HEADERS=()
if [ -n "${TOKEN:-}" ]; then
  HEADERS=(-H "Authorization: Bearer $TOKEN" -H "Audit-ID: 2b6d8f4e-5c3a-4e1b-9d7f-6a5b4c3d2e1f")
fi
PATH_SMALL=/api/v1/namespaces/default/pods/p1
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
cpu() { awk '/^cpu / {t = 0; for (i = 2; i <= 9; i++) t += $i; print t, $5 + $6}' /proc/stat; }
ctxt() { awk '/^ctxt/ {print $2}' /proc/stat; }

# measure NAME PORT PID: 1 s of warm-up, then 5 s measured.
measure() {
  local name=$1 port=$2 pid=$3
  wait_port "$port"
  wrk -t2 -c64 -d1s "${HEADERS[@]}" "http://127.0.0.1:$port$PATH_SMALL" >/dev/null
  local u0 p0 c0 t0 i0 u1 p1 c1 t1 i1 w0 w1 wpid n
  u0=$(ticks "$up"); p0=$(ticks "$pid"); c0=$(ctxt); read -r t0 i0 < <(cpu)
  wrk -t2 -c64 -d5s "${HEADERS[@]}" "http://127.0.0.1:$port$PATH_SMALL" >"$WORK/wrk.txt" &
  local w=$!
  # wrk's own CPU: read while it runs (its /proc entry goes when it exits).
  for _ in $(seq 1 50); do wpid=$(pgrep -n -x wrk) && break; sleep 0.01; done
  w0=$(ticks "$wpid"); w1=$w0
  while kill -0 "$w" 2>/dev/null; do w1=$(ticks "$wpid" 2>/dev/null || echo "$w1"); sleep 0.05; done
  wait "$w"
  u1=$(ticks "$up"); p1=$(ticks "$pid"); c1=$(ctxt); read -r t1 i1 < <(cpu)
  n=$(awk '/requests in/ {print $1}' "$WORK/wrk.txt")
  awk -v name="$name" -v n="$n" -v p=$((p1 - p0)) -v u=$((u1 - u0)) -v w=$((w1 - w0)) \
      -v i=$((i1 - i0)) -v t=$((t1 - t0)) -v c=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" 'BEGIN {
    f = 1e6 / hz / n
    printf "%-9s %8d req  µs/req: proxy %5.2f  upstream %5.2f  wrk %5.2f  idle %5.2f  all %5.2f  context switches/req %.3f\n",
      name, n, p * f, u * f, w * f, i * f, t * f, c / n }'
}

for _ in $(seq "${ROUNDS:-3}"); do
  RUST_LOG=warn "$ROOT/target/release/kubeguard" serve --listen "http://127.0.0.1:$KG_PORT" \
    --admin-listen 127.0.0.1:0 --kubeconfig "$WORK/kubeconfig" >"$WORK/kg.log" 2>&1 &
  kg=$!
  measure kubeguard "$KG_PORT" "$kg"
  kill "$kg"; wait "$kg" 2>/dev/null || true
  haproxy -f "$WORK/haproxy.cfg" >"$WORK/haproxy.log" 2>&1 &
  hap=$!
  sleep 0.5
  measure haproxy "$HAP_PORT" "$(pgrep -n -P "$hap" haproxy || echo "$hap")"
  kill "$hap"; wait "$hap" 2>/dev/null || true
done
