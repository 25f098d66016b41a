#!/usr/bin/env bash
# Runs every test of the workspace. Installs what the tests need first:
#   Debian's etcd-server and etcd-client 3.4 (the reference server and the real client),
#   iptables (network partitions between members on 127.0.0.x), Prometheus 2.42 with promtool
#   (etcd's alerts evaluated against Cairn), Go (its pprof reads Cairn's CPU profiles; etcd's
#   suite is built with it), and a Python venv with
#   helm-python-sdk and kubernetes-validate (the Helm chart's check) and moto's S3 server
#   (the backup tests).
set -euo pipefail
cd "$(dirname "$0")"

sudo_if_needed() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
command -v etcdctl >/dev/null 2>&1 || missing+=(etcd-client)
command -v iptables >/dev/null 2>&1 || missing+=(iptables)
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v go >/dev/null 2>&1 || missing+=(golang-go)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]}"
  sudo_if_needed apt-get update -qq
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
etcd --version | sed -n 1p
etcdctl version | sed -n 1p

# The Helm chart's check (scripts/check-chart.py) runs Helm's Go SDK and Kubernetes' schemas,
# and the backup tests run moto's S3 server, from a venv kept outside the clone, made once
# with pinned versions.
export CAIRN_VENV="${CAIRN_VENV:-/var/tmp/cairn-venv}"
pins=(helm-python-sdk==0.2.2 kubernetes-validate==1.37.0 moto==5.2.5)
have_pins() {
  local frozen
  frozen=$("$CAIRN_VENV/bin/pip" freeze 2>/dev/null) || return 1
  for p in "${pins[@]}"; do grep -qx "$p" <<<"$frozen" || return 1; done
  [ -x "$CAIRN_VENV/bin/moto_server" ]
}
if ! have_pins; then
  echo "making the venv $CAIRN_VENV"
  rm -rf "$CAIRN_VENV"
  if ! python3 -m venv "$CAIRN_VENV" 2>/dev/null; then
    sudo_if_needed apt-get update -qq
    sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    rm -rf "$CAIRN_VENV"
    python3 -m venv "$CAIRN_VENV"
  fi
  # moto's server needs its [server] extra (flask).
  "$CAIRN_VENV/bin/pip" install -q "${pins[0]}" "${pins[1]}" "moto[server]==5.2.5"
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The module rules and the import graph (README: "Architecture").
python3 scripts/architecture.py
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
# etcd 3.4's own e2e suite with cairn as the etcd binary (e2e/etcd-suite/README.md).
set +e
e2e/etcd-suite/run.sh
suite=$?
set -e
[ "$status" = 0 ] || exit "$status"
exit "$suite"
