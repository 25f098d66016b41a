#!/usr/bin/env bash
# Runs every test of the workspace. Installs what the tests need first:
#   Debian's etcd-server and etcd-client 3.4 (the reference server and the real client), and
#   iptables (network partitions between members on 127.0.0.x).
set -euo pipefail
cd "$(dirname "$0")"

sudo_if_needed() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
command -v etcdctl >/dev/null 2>&1 || missing+=(etcd-client)
command -v iptables >/dev/null 2>&1 || missing+=(iptables)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]}"
  sudo_if_needed apt-get update -qq
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
etcd --version | sed -n 1p
etcdctl version | sed -n 1p

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The e2e tests run the freshly built binaries.
cargo build --workspace --bins --locked
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --locked 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line for the whole run: cargo prints a summary per test binary.
awk '/^test result:/ { p += $4; f += $6 } END { printf "%d passed, %d failed\n", p, f }' "$log"
exit "$status"
