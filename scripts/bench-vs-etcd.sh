#!/usr/bin/env bash
# Benchmark: the same `cairn bench` loads against Debian's etcd 3.4 and against cairn, one
# server at a time on this machine, then the ratio cairn/etcd for each load.
#   scripts/bench-vs-etcd.sh [--check-perf]    (needs a release build: cargo build --release)
source "$(dirname "$0")/bench-common.sh"

loads=(
  "put --clients 1 --conns 1 --total 3000"
  "put --clients 16 --conns 4 --total 20000"
  "put --clients 64 --conns 8 --total 40000"
  "put --clients 256 --conns 16 --total 60000"
  "range --clients 64 --conns 8 --total 60000 --key-space-size 1000"
  "range --clients 64 --conns 8 --total 60000 --key-space-size 1000 --serializable"
  "watch --watchers 1000 --conns 10 --total 1000 --val-size 64"
  "watch --watchers 10000 --conns 10 --total 100 --val-size 64"
  "lease-grant --clients 64 --conns 8 --total 20000"
  "lease-keepalive --clients 64 --conns 8 --total 60000"
)

start() { # kind port
  local kind=$1 port=$2 bin
  bin=$([ "$kind" = etcd ] && command -v etcd || echo "$CAIRN")
  "$bin" --data-dir "$work/$kind" --listen-client-urls "http://127.0.0.1:$port" \
    --advertise-client-urls "http://127.0.0.1:$port" --listen-peer-urls "http://127.0.0.1:$((port + 1))" \
    --initial-advertise-peer-urls "http://127.0.0.1:$((port + 1))" \
    --initial-cluster "default=http://127.0.0.1:$((port + 1))" >"$work/$kind.log" 2>&1 &
  for _ in $(seq 100); do curl -sf "127.0.0.1:$port/health" >/dev/null && return; sleep 0.1; done
  echo "$kind did not start" >&2; exit 1
}

declare -A result
for kind in etcd cairn; do
  port=$([ "$kind" = etcd ] && echo 32379 || echo 33379)
  start "$kind" "$port"
  "$CAIRN" bench put --endpoints "127.0.0.1:$port" --clients 16 --total 1000 --key-space-size 1000 >/dev/null
  for i in "${!loads[@]}"; do
    result[$kind,$i]=$("$CAIRN" bench ${loads[$i]} --endpoints "127.0.0.1:$port" --json)
  done
  if [ "$CHECK_PERF" = --check-perf ]; then
    echo "== etcdctl check perf --load=m against $kind"
    ETCDCTL_API=3 etcdctl --endpoints "127.0.0.1:$port" check perf --load=m 2>&1 | grep -v '^\s*[0-9]* / [0-9]*' | tail -6 || true
  fi
  kill %1 2>/dev/null || true
  wait 2>/dev/null || true
done

printf '\n%-84s %12s %12s %7s %s\n' load "etcd ops/s" "cairn ops/s" ratio "p99 or memory per watcher (etcd / cairn)"
for i in "${!loads[@]}"; do
  python3 - "${loads[$i]}" "${result[etcd,$i]}" "${result[cairn,$i]}" <<'PY'
import json, sys
load, e, c = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
rate = lambda r: r.get("requests_per_second", r.get("events_per_second"))
er, cr = rate(e), rate(c)
if "p99_ms" in e:
    extra = f'{e["p99_ms"]:7.1f}ms {c["p99_ms"]:7.1f}ms'
else:
    kib = lambda r: "?" if r["server_rss_bytes_per_watcher"] is None else f'{r["server_rss_bytes_per_watcher"] / 1024:.1f} KiB'
    extra = f'{kib(e)} / {kib(c)} (events delivered/s)'
errors = (e.get("errors", 0), c.get("errors", 0))
print(f'{load:<84} {er:12.0f} {cr:12.0f} {cr/er:7.2f} {extra}' + (f'  errors etcd={errors[0]} cairn={errors[1]}' if any(errors) else ''))
PY
done
