#!/usr/bin/env bash
# S3 of the shared harness against kubeguard alone: 20 sequential 49 MB LISTs, then 12 over 4
# connections, with kubeguard's idle RSS and its peak (VmHWM) after each phase. Quicker than
# perf.sh for a change to the body path; compare its numbers only with a run of its own.
# Needs the harness's release binaries (../shared/perf: one run of perf.sh builds them).
#
#   bash loadtests/list_rss.sh            # builds kubeguard (release), then runs once
#   RUNS=3 bash loadtests/list_rss.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${PERF_HARNESS:-$ROOT/../shared/perf}/target/release"
for b in fake-apiserver perfclient; do
  [ -x "$BIN/$b" ] || { echo "no $BIN/$b: build the harness first" >&2; exit 1; }
done
cargo build --release --locked --manifest-path "$ROOT/Cargo.toml" -q
UP_PORT=18880 KG_PORT=18881
WORK="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
# shellcheck source=loadtests/fake_upstream.sh
. "$ROOT/loadtests/fake_upstream.sh"
start_fake_upstream "$BIN" "$UP_PORT" "$WORK"
kb() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$2/status"; }
mb() { python3 -c "import json,sys; print(round(json.load(sys.stdin)['mb_per_s']))"; }
URL="http://127.0.0.1:$KG_PORT/api/v1/pods?limit=10000"
for run in $(seq "${RUNS:-1}"); do
  RUST_LOG=warn "$ROOT/target/release/kubeguard" serve --listen "http://127.0.0.1:$KG_PORT" \
    --admin-listen 127.0.0.1:0 --kubeconfig "$WORK/kubeconfig" >"$WORK/kg.log" 2>&1 & kg=$!
  wait_port "$KG_PORT"
  idle=$(kb VmRSS "$kg")
  seq_mb=$(timeout 120 "$BIN/perfclient" list --url "$URL" --count 20 --concurrency 1 --timeout 90 | mb)
  after_seq=$(kb VmHWM "$kg")
  conc_mb=$(timeout 120 "$BIN/perfclient" list --url "$URL" --count 12 --concurrency 4 --workers 2 --timeout 90 | mb)
  peak=$(kb VmHWM "$kg")
  kill "$kg"; wait "$kg" 2>/dev/null || true
  python3 -c "print('run $run: seq $seq_mb MB/s, 4-conc $conc_mb MB/s; idle RSS %.1f MB, peak over idle %.1f MB after seq, %.1f MB after all' % ($idle/1024, ($after_seq-$idle)/1024, ($peak-$idle)/1024))"
done
