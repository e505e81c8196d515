#!/usr/bin/env bash
# Instructions per small GET through kubeguard, and through the harness's naive hyper proxy
# (minproxy) for comparison, counted by callgrind: repeatable whatever else the machine is doing,
# unlike the req/s of loadtests/perf.sh. Needs the harness's release binaries (../shared/perf:
# `cargo build --release` there, or one run of perf.sh) and kubeguard's (built here).
#
#   bash loadtests/callgrind.sh              # 20,000 GETs each; prints instructions/request
#   N=5000 ONLY=kubeguard bash loadtests/callgrind.sh
#   PROTO=h2 bash loadtests/callgrind.sh     # h2 (prior knowledge, 4 connections x 8 streams)
#   PROTO=h2tls ONLY=kubeguard bash loadtests/callgrind.sh  # h2 over TLS 1.3 (kubeguard's own cert)
#   KUBEGUARD_CONFIG=loadtests/h2-hyper.yaml PROTO=h2 ONLY=kubeguard bash loadtests/callgrind.sh  # hyper's h2
#   TOKEN=abc PROTO=h1 ONLY=kubeguard bash loadtests/callgrind.sh  # every request with a bearer token, as kubectl's
#   callgrind_annotate --inclusive=yes target/callgrind/kubeguard.out | head -80
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PERF="${PERF_HARNESS:-$ROOT/../shared/perf}"
BIN="$PERF/target/release"
N="${N:-20000}"
# h1: HTTP/1.1 keep-alive over 4 connections; h2: 4 connections x 8 concurrent streams.
SCHEME=http
case "${PROTO:-h1}" in
  h1) LOAD=(--h1 -c 4) ;;
  h2) LOAD=(-c 4 -m 8) ;;
  h2tls) LOAD=(-c 4 -m 8) SCHEME=https
    [ "${ONLY:-}" = kubeguard ] || { echo "PROTO=h2tls measures kubeguard only: set ONLY=kubeguard" >&2; exit 1; } ;;
  *) echo "PROTO is h1, h2 or h2tls" >&2; exit 1 ;;
esac
[ -n "${TOKEN:-}" ] && LOAD+=(-H "authorization: Bearer $TOKEN")
OUT="$ROOT/target/callgrind"
UP_PORT=18780 KG_PORT=18781 MIN_PORT=18782
PATH_SMALL=/api/v1/namespaces/default/pods/p1
for tool in valgrind callgrind_control h2load; do
  command -v "$tool" >/dev/null || { echo "$tool not found (apt-get install valgrind nghttp2-client)" >&2; exit 1; }
done
[ -x "$BIN/fake-apiserver" ] || { echo "no $BIN/fake-apiserver: build the harness first" >&2; exit 1; }
cargo build --release --locked --manifest-path "$ROOT/Cargo.toml" -q
mkdir -p "$OUT"

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

# shellcheck source=loadtests/fake_upstream.sh
. "$ROOT/loadtests/fake_upstream.sh"
start_fake_upstream "$BIN" "$UP_PORT" "$OUT"

# One measured proxy: start under callgrind with collection off, warm up, count N requests.
measure() {
  local name=$1 port=$2; shift 2
  rm -f "$OUT/$name.out"*
  valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$OUT/$name.out" "$@" \
    >"$OUT/$name.log" 2>&1 &
  local pid=$!
  pids+=("$pid")
  wait_port "$port"
  h2load "${LOAD[@]}" -n 2000 "$SCHEME://127.0.0.1:$port$PATH_SMALL" >/dev/null
  callgrind_control -i on "$pid" >/dev/null
  h2load "${LOAD[@]}" -n "$N" "$SCHEME://127.0.0.1:$port$PATH_SMALL" | grep -E "^requests:" >&2
  callgrind_control -i off "$pid" >/dev/null
  callgrind_control -d "$pid" >/dev/null
  kill "$pid"; wait "$pid" 2>/dev/null || true
  local total
  # The dump holds exactly the instrumented load (part 1); the file written at exit is empty.
  total=$(awk '/^totals:/ {print $2; exit}' "$OUT/$name.out.1")
  printf '%-10s %s %8d instructions/request  (%s over %d requests; %s)\n' \
    "$name" "${PROTO:-h1}" "$((total / N))" "$total" "$N" "$OUT/$name.out.1"
}

if [ "${ONLY:-}" != kubeguard ]; then
  measure minproxy "$MIN_PORT" "$BIN/minproxy" --listen "127.0.0.1:$MIN_PORT" --upstream "http://127.0.0.1:$UP_PORT"
fi
RUST_LOG=warn measure kubeguard "$KG_PORT" "$ROOT/target/release/kubeguard" serve \
  --listen "$SCHEME://127.0.0.1:$KG_PORT" --admin-listen 127.0.0.1:0 --kubeconfig "$OUT/kubeconfig" \
  ${KUBEGUARD_CONFIG:+--config "$(realpath "$KUBEGUARD_CONFIG")"}
