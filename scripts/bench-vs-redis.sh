#!/usr/bin/env bash
# Throughput of a local 3-node Verity cluster (fsync always) beside redis-server with
# --appendonly yes --appendfsync always, measured by redis-benchmark in the same run, with
# the ratio. Loopback only; every run is bounded by -n requests.
#
#   scripts/bench-vs-redis.sh [VERITY_BINARY ...]     (default: target/release/verity; a
#                                                      build without --initial-cluster-state fails)
#   REQUESTS=300000 CLIENTS=50 PIPELINE=16 TESTS=set,get scripts/bench-vs-redis.sh
#   NODE_ARGS="--consistency lease" scripts/bench-vs-redis.sh   (extra flags for every node)
#
# Needs redis-server and redis-benchmark (apt-get install redis-server redis-tools).
set -euo pipefail
cd "$(dirname "$0")/.."
requests=${REQUESTS:-300000}
clients=${CLIENTS:-50}
pipeline=${PIPELINE:-16}
tests=${TESTS:-set,get}
read -r -a node_args <<<"${NODE_ARGS:-}"
binaries=("$@")
[ ${#binaries[@]} -eq 0 ] && binaries=(target/release/verity)
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# Prints "TEST requests/s" lines for one server.
measure() {
  redis-benchmark -p "$1" -t "$tests" -n "$requests" -c "$clients" -P "$pipeline" -q 2>/dev/null \
    | tr '\r' '\n' | grep -oE '[A-Z_]+: [0-9.]+ requests per second' | sed -E 's/: ([0-9.]+) .*/ \1/'
}

redis-server --port 6399 --save '' --appendonly yes --appendfsync always --dir "$work" \
  --daemonize no >"$work/redis.log" 2>&1 &
pids+=($!)
sleep 1
declare -A anchor
while read -r test rate; do anchor[$test]=$rate; done < <(measure 6399)
printf '%-44s %-6s %14s %14s %8s\n' server test 'requests/s' 'redis-server' ratio
for test in "${!anchor[@]}"; do
  printf '%-44s %-6s %14s %14s %8s\n' "redis-server (fsync always)" "$test" "${anchor[$test]}" "${anchor[$test]}" 1.00
done

port=7100
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$work/peer-secret"
for binary in "${binaries[@]}"; do
  label="$binary${NODE_ARGS:+ $NODE_ARGS}"
  peers="1=127.0.0.1:$((port + 11)),2=127.0.0.1:$((port + 12)),3=127.0.0.1:$((port + 13))"
  for id in 1 2 3; do
    "$binary" node --id "$id" --data-dir "$work/$port-n$id" --initial-cluster-state new \
      --peer-secret-file "$work/peer-secret" --peer-addr "127.0.0.1:$((port + 10 + id))" \
      --client-addr "127.0.0.1:$((port + id))" --peers "$peers" "${node_args[@]}" \
      >"$work/$port-n$id.log" 2>&1 &
    pids+=($!)
  done
  leader=""
  for _ in $(seq 100); do
    for id in 1 2 3; do
      if redis-cli -p $((port + id)) INFO 2>/dev/null | grep -q '^role:leader'; then leader=$((port + id)); fi
    done
    [ -n "$leader" ] && break
    sleep 0.1
  done
  [ -n "$leader" ] || { echo "no leader for $binary" >&2; exit 1; }
  follower=$((port + 1)); [ "$follower" = "$leader" ] && follower=$((port + 2))
  for role in leader follower; do
    target=$leader; [ $role = follower ] && target=$follower
    while read -r test rate; do
      ratio=$(awk -v a="$rate" -v b="${anchor[$test]:-0}" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')
      printf '%-44s %-6s %14s %14s %8s\n' "$label via $role" "$test" "$rate" "${anchor[$test]:-}" "$ratio"
    done < <(measure "$target")
  done
  port=$((port + 100))
done
