# Sourced by the shell load tests: the shared harness's fake apiserver, and a kubeconfig for it.
# The caller keeps the started processes' pids in its `pids` array and kills them on exit.

# Waits until 127.0.0.1:PORT accepts connections (at most 20 s).
wait_port() {
  for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
  echo "port $1 did not open" >&2; return 1
}

# start_fake_upstream BIN PORT DIR: the harness's fake apiserver from BIN on 127.0.0.1:PORT (its
# log in DIR/upstream.log), and DIR/kubeconfig pointing at it with a bearer token.
start_fake_upstream() {
  local bin=$1 port=$2 dir=$3
  "$bin/fake-apiserver" --http "127.0.0.1:$port" >"$dir/upstream.log" 2>&1 &
  pids+=($!)
  wait_port "$port"
  cat >"$dir/kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters: [{name: fake, cluster: {server: "http://127.0.0.1:$port"}}]
users: [{name: bench, user: {token: bench-not-a-secret}}]
contexts: [{name: fake, context: {cluster: fake, user: bench}}]
current-context: fake
KC
}
