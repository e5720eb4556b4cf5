#!/usr/bin/env bash
# How a 3-node Verity cluster (fsync always) holds up over a long history (issue 12):
#
#   1. DURATION seconds of pipelined SETs over KEYS keys: every SAMPLE seconds, each node's
#      data directory size (WAL segments + snapshot), its WAL segment count and snapshot index;
#      the largest size seen is the bound the node kept.
#   2. A follower killed (SIGKILL) and restarted: milliseconds from spawn until it answers PING,
#      and until it has applied everything the leader had.
#   3. A follower stopped while CATCH_UP more writes go through the leader, then restarted:
#      seconds until it has applied what the leader had, and whether it caught up by snapshot.
#
# Loopback only; every load is bounded in requests and time.
#
#   scripts/bench-long-run.sh                       (600 s, 100,000 keys, 1,000,000 catch-up)
#   DURATION=60 CATCH_UP=200000 scripts/bench-long-run.sh
#   NODE_ARGS="--snapshot-entries 50000" scripts/bench-long-run.sh
#
# Needs redis-benchmark and redis-cli (apt-get install redis-tools) and a release build.
set -euo pipefail
cd "$(dirname "$0")/.."
binary=${VERITY_BIN:-target/release/verity}
duration=${DURATION:-600}
keys=${KEYS:-100000}
sample=${SAMPLE:-30}
catch_up=${CATCH_UP:-1000000}
read -r -a node_args <<<"${NODE_ARGS:-}"
work=$(mktemp -d)
declare -A pids
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

port=7300
peers="1=127.0.0.1:$((port + 11)),2=127.0.0.1:$((port + 12)),3=127.0.0.1:$((port + 13))"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$work/peer-secret"

start_node() {
  local id=$1 state=existing
  [ -d "$work/n$id" ] || state=new
  "$binary" node --id "$id" --data-dir "$work/n$id" --initial-cluster-state "$state" \
    --peer-secret-file "$work/peer-secret" --peer-addr "127.0.0.1:$((port + 10 + id))" \
    --client-addr "127.0.0.1:$((port + id))" --peers "$peers" "${node_args[@]}" \
    >>"$work/n$id.log" 2>&1 &
  pids[$id]=$!
}

info() { redis-cli -p $((port + $1)) INFO 2>/dev/null | tr -d '\r' | grep "^$2:" | cut -d: -f2; }

now_ms() { date +%s%3N; }

leader_id() {
  for _ in $(seq 200); do
    for id in 1 2 3; do
      [ "$(info "$id" role)" = leader ] && { echo "$id"; return; }
    done
    sleep 0.05
  done
  echo "no leader" >&2
  exit 1
}

# Waits until node $1 has applied index $2; prints the milliseconds it took from $3.
wait_applied() {
  local deadline=$(($(now_ms) + 600000))
  while [ "$(info "$1" applied_index || echo 0)" -lt "$2" ] 2>/dev/null || [ -z "$(info "$1" applied_index)" ]; do
    [ "$(now_ms)" -lt "$deadline" ] || { echo "node $1 did not apply $2 within 600 s" >&2; exit 1; }
    sleep 0.02
  done
  echo $(($(now_ms) - $3))
}

sizes() {
  for id in 1 2 3; do
    local bytes segments
    bytes=$(du -sb "$work/n$id" | cut -f1)
    segments=$(find "$work/n$id/wal" -name '*.wal' | wc -l)
    printf 'n%s %6.1f MiB %2s segments snapshot %-9s  ' "$id" "$(echo "$bytes / 1048576" | bc -l)" \
      "$segments" "$(info "$id" snapshot_index)"
    echo "$bytes" >>"$work/sizes-n$id"
  done
  echo
}

for id in 1 2 3; do start_node "$id"; done
leader=$(leader_id)
echo "== 1. ${duration} s of SETs over $keys keys (leader n$leader)"
started=$(date +%s)
writes=0
next_sample=$((started + sample))
while [ $(($(date +%s) - started)) -lt "$duration" ]; do
  redis-benchmark -p $((port + leader)) -t set -r "$keys" -n 100000 -c 50 -P 16 -q >/dev/null 2>&1
  writes=$((writes + 100000))
  if [ "$(date +%s)" -ge "$next_sample" ]; then
    printf '%4ss %9s writes  ' $(($(date +%s) - started)) "$writes"
    sizes
    next_sample=$((next_sample + sample))
  fi
done
elapsed=$(($(date +%s) - started))
printf 'end   %9s writes in %s s (%s/s)  ' "$writes" "$elapsed" $((writes / elapsed))
sizes
for id in 1 2 3; do
  printf 'n%s largest data directory seen: %.1f MiB\n' "$id" "$(sort -n "$work/sizes-n$id" | tail -1 | awk '{print $1 / 1048576}')"
done

follower=1; [ "$follower" = "$leader" ] && follower=2
echo "== 2. restart of follower n$follower after SIGKILL, its history $(info "$leader" commit_index) entries long"
kill -9 "${pids[$follower]}"; wait "${pids[$follower]}" 2>/dev/null || true
target=$(info "$leader" applied_index)
spawned=$(now_ms)
start_node "$follower"
until redis-cli -p $((port + follower)) PING 2>/dev/null | grep -q PONG; do sleep 0.01; done
echo "answers PING after $(($(now_ms) - spawned)) ms; applied index $target after $(wait_applied "$follower" "$target" "$spawned") ms"

echo "== 3. follower n$follower down while $catch_up more writes go through the leader"
kill -9 "${pids[$follower]}"; wait "${pids[$follower]}" 2>/dev/null || true
before=$(info "$leader" commit_index)
redis-benchmark -p $((port + leader)) -t set -r "$keys" -n "$catch_up" -c 50 -P 16 -q >/dev/null 2>&1
target=$(info "$leader" applied_index)
echo "the leader's log went from $before to $target ($((target - before)) entries; snapshot at $(info "$leader" snapshot_index))"
spawned=$(now_ms)
start_node "$follower"
took=$(wait_applied "$follower" "$target" "$spawned")
echo "caught up in $took ms from spawn, by $(info "$follower" snapshots_installed) snapshot(s) from the leader (INFO snapshots_installed)"
