#!/usr/bin/env bash
# kubeguard side by side with the direct path, nginx, haproxy, kubectl proxy and a naive hyper
# proxy, in one run of the shared harness (../shared/perf; its README explains every scenario).
# Everything runs on 127.0.0.1 and every step is bounded in time; the harness prints the tables.
#
#   bash loadtests/perf.sh                                  # all scenarios (~10 min after the first build)
#   SCENARIOS="s1 s3" PROXIES="direct haproxy" bash loadtests/perf.sh
#   KUBEGUARD_CONFIG=my.yaml SCENARIOS=s4 bash loadtests/perf.sh   # kubeguard with a config file
#   S5_CONNS=3 S5_EVENTS=40 bash loadtests/perf.sh                 # S5 as the harness's defaults
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PERF="${PERF_HARNESS:-$ROOT/../shared/perf}"
[ -f "$PERF/run.sh" ] || { echo "perf harness not found at $PERF (set PERF_HARNESS)" >&2; exit 1; }

cargo build --release --locked --manifest-path "$ROOT/Cargo.toml"

export PROXY_NAME=kubeguard PROXY_PORT="${PROXY_PORT:-18681}" PROXY_TLS_PORT="${PROXY_TLS_PORT:-18682}" PROXY_H2=1
# Plain HTTP/1.1 on the loopback port, TLS (h2 + http/1.1 by ALPN) on the TLS port, upstream from
# the harness's kubeconfig. RUST_LOG=warn: no per-request logging in the measurement.
export PROXY_CMD="env RUST_LOG=warn $ROOT/target/release/kubeguard serve \
  --listen http://127.0.0.1:\$PROXY_PORT --listen https://127.0.0.1:\$PROXY_TLS_PORT \
  --tls-cert \$TLS_CERT --tls-key \$TLS_KEY --kubeconfig \$KUBECONFIG_HTTP --admin-listen 127.0.0.1:0\
  ${KUBEGUARD_CONFIG:+ --config $(realpath "$KUBEGUARD_CONFIG")}"
# S5's p99 over the harness's default 120 events is the second-slowest event and swings by a
# millisecond from run to run; 8 connections x 250 events (2,000) give a p99 worth comparing.
export S5_CONNS="${S5_CONNS:-8}" S5_EVENTS="${S5_EVENTS:-250}"
# The harness runs only the proxies named in PROXIES; kubeguard is always one of them.
export PROXIES="${PROXIES:-direct nginx haproxy kubectl minproxy} kubeguard"
exec bash "$PERF/run.sh"
