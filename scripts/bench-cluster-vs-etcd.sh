#!/usr/bin/env bash
# Benchmark of three members on loopback: puts with 1, 10, 100 and 1000 clients spread over
# all three endpoints (followers forward to the leader), Debian's etcd 3.4 and cairn one
# cluster at a time on this machine, then the ratio cairn/etcd. With --check-perf, also
# `etcdctl check perf --load=l` against each cluster.
#   scripts/bench-cluster-vs-etcd.sh [--check-perf]    (needs: cargo build --release)
source "$(dirname "$0")/bench-common.sh"

loads=(
  "put --clients 1 --conns 1 --total 3000"
  "put --clients 10 --conns 3 --total 10000"
  "put --clients 100 --conns 12 --total 40000"
  "put --clients 1000 --conns 99 --total 60000"
)

start_cluster() { # kind base-port: members on base+10i (client) and base+10i+1 (peer)
  local kind=$1 base=$2 bin initial="" i
  bin=$([ "$kind" = etcd ] && command -v etcd || echo "$CAIRN")
  for i in 0 1 2; do initial+="${initial:+,}m$i=http://127.0.0.1:$((base + 10 * i + 1))"; done
  for i in 0 1 2; do
    local c=$((base + 10 * i)) p=$((base + 10 * i + 1))
    "$bin" --name "m$i" --data-dir "$work/$kind-$i" --listen-client-urls "http://127.0.0.1:$c" \
      --advertise-client-urls "http://127.0.0.1:$c" --listen-peer-urls "http://127.0.0.1:$p" \
      --initial-advertise-peer-urls "http://127.0.0.1:$p" --initial-cluster "$initial" \
      --initial-cluster-token bench >"$work/$kind-$i.log" 2>&1 &
  done
  for i in 0 1 2; do
    for _ in $(seq 200); do curl -sf "127.0.0.1:$((base + 10 * i))/health" >/dev/null && continue 2; sleep 0.1; done
    echo "$kind member $i did not start:" >&2; tail -20 "$work/$kind-$i.log" >&2; exit 1
  done
}

declare -A result
for kind in etcd cairn; do
  base=$([ "$kind" = etcd ] && echo 42370 || echo 43370)
  start_cluster "$kind" "$base"
  eps="127.0.0.1:$base,127.0.0.1:$((base + 10)),127.0.0.1:$((base + 20))"
  "$CAIRN" bench put --endpoints "$eps" --clients 16 --total 1000 --key-space-size 1000 >/dev/null
  for i in "${!loads[@]}"; do
    result[$kind,$i]=$("$CAIRN" bench ${loads[$i]} --endpoints "$eps" --json)
  done
  if [ "$CHECK_PERF" = --check-perf ]; then
    echo "== etcdctl check perf --load=l against three $kind members"
    ETCDCTL_API=3 etcdctl --endpoints "$eps" check perf --load=l 2>&1 | grep -v '^\s*[0-9]* / [0-9]*' | tail -6 || true
  fi
  kill $(jobs -p) 2>/dev/null || true
  wait 2>/dev/null || true
done

printf '\n%-48s %12s %12s %7s %s\n' "load (3 members)" "etcd ops/s" "cairn ops/s" ratio "p99 etcd / cairn"
for i in "${!loads[@]}"; do
  python3 - "${loads[$i]}" "${result[etcd,$i]}" "${result[cairn,$i]}" <<'PY'
import json, sys
load, e, c = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
er, cr = e["requests_per_second"], c["requests_per_second"]
errors = (e.get("errors", 0), c.get("errors", 0))
print(f'{load:<48} {er:12.0f} {cr:12.0f} {cr/er:7.2f} {e["p99_ms"]:7.1f}ms {c["p99_ms"]:7.1f}ms'
      + (f'  errors etcd={errors[0]} cairn={errors[1]}' if any(errors) else ''))
PY
done
