#!/usr/bin/env bash
# Benchmark: what TLS and auth cost. The same `cairn bench` loads against Debian's etcd 3.4 and
# against cairn, each served three ways: plain http; https with client certificates required
# (mutual TLS); mutual TLS with auth enabled, the client acting as a user whose role may
# read and write the benchmark's keys (a permission check on every request, as a shared
# cluster runs). Prints ops/s per server and way, the ratio cairn/etcd, and each server's
# cost of TLS and of auth against its own plain figure.
#   scripts/bench-security-vs-etcd.sh    (needs a release build: cargo build --release --bin cairn)
source "$(dirname "$0")/bench-common.sh"

loads=(
  "put --clients 1 --conns 1 --total 3000"
  "put --clients 16 --conns 4 --total 20000"
  "range --clients 64 --conns 8 --total 60000 --key-space-size 1000"
)
ways=(plain tls auth)

# A CA, a server certificate for 127.0.0.1, a client certificate (CN "bench").
certs=$work/certs
mkdir -p "$certs"
(
  cd "$certs"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=bench-ca -keyout ca.key -out ca.crt 2>/dev/null
  for who in server client; do
    openssl req -newkey rsa:2048 -nodes -subj "/CN=$who" -keyout "$who.key" -out "$who.csr" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$who.ext"
    openssl x509 -req -in "$who.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
      -extfile "$who.ext" -out "$who.crt" 2>/dev/null
  done
)
client_tls=(--cacert "$certs/ca.crt" --cert "$certs/client.crt" --key "$certs/client.key")

start() { # kind way port
  local kind=$1 way=$2 port=$3 bin scheme=http tls=()
  bin=$([ "$kind" = etcd ] && command -v etcd || echo "$CAIRN")
  if [ "$way" != plain ]; then
    scheme=https
    tls=(--cert-file "$certs/server.crt" --key-file "$certs/server.key" --trusted-ca-file "$certs/ca.crt" --client-cert-auth)
  fi
  "$bin" --data-dir "$work/$kind-$way" --listen-client-urls "$scheme://127.0.0.1:$port" \
    --advertise-client-urls "$scheme://127.0.0.1:$port" --listen-peer-urls "http://127.0.0.1:$((port + 1))" \
    --initial-advertise-peer-urls "http://127.0.0.1:$((port + 1))" \
    --initial-cluster "default=http://127.0.0.1:$((port + 1))" "${tls[@]}" >"$work/$kind-$way.log" 2>&1 &
  for _ in $(seq 100); do
    curl -sf --cacert "$certs/ca.crt" --cert "$certs/client.crt" --key "$certs/client.key" \
      "$scheme://127.0.0.1:$port/health" >/dev/null && return
    sleep 0.1
  done
  echo "$kind ($way) did not start" >&2; exit 1
}

ctl() { ETCDCTL_API=3 etcdctl --endpoints "https://127.0.0.1:$port" "${client_tls[@]}" "$@" >/dev/null; }

declare -A result
port=34379
for kind in etcd cairn; do
  for way in "${ways[@]}"; do
    port=$((port + 10))
    start "$kind" "$way" "$port"
    flags=(--endpoints "127.0.0.1:$port")
    [ "$way" = plain ] || flags+=("${client_tls[@]}")
    if [ "$way" = auth ]; then
      # The bench's keys are zero-padded numbers: the role covers ["0", ":").
      ctl user add root:rootpw && ctl role add root && ctl user grant-role root root
      ctl user add bench:benchpw && ctl role add bench && ctl role grant-permission bench readwrite 0 :
      ctl user grant-role bench bench && ctl auth enable
      flags+=(--user bench:benchpw)
    fi
    "$CAIRN" bench put "${flags[@]}" --clients 16 --total 1000 --key-space-size 1000 >/dev/null
    for i in "${!loads[@]}"; do
      result[$kind,$way,$i]=$("$CAIRN" bench ${loads[$i]} "${flags[@]}" --json)
    done
    kill %1 2>/dev/null || true
    wait 2>/dev/null || true
  done
done

printf '\n%-66s %-6s %10s %10s %7s %16s %16s\n' load way "etcd/s" "cairn/s" ratio "etcd vs plain" "cairn vs plain"
for i in "${!loads[@]}"; do
  for way in "${ways[@]}"; do
    python3 - "${loads[$i]}" "$way" "${result[etcd,$way,$i]}" "${result[cairn,$way,$i]}" \
      "${result[etcd,plain,$i]}" "${result[cairn,plain,$i]}" <<'PY'
import json, sys
load, way = sys.argv[1], sys.argv[2]
e, c, ep, cp = (json.loads(a) for a in sys.argv[3:7])
rate = lambda r: r["requests_per_second"]
errors = (e["errors"], c["errors"])
print(f'{load:<66} {way:<6} {rate(e):10.0f} {rate(c):10.0f} {rate(c)/rate(e):7.2f} '
      f'{rate(e)/rate(ep):15.2f}x {rate(c)/rate(cp):15.2f}x'
      + (f'  errors etcd={errors[0]} cairn={errors[1]}' if any(errors) else ''))
PY
  done
done
