# Sourced by the bench-*-vs-etcd.sh scripts: the release binary, the --check-perf flag, and a
# work dir that goes (with every server started) when the script ends.
set -euo pipefail
cd "$(dirname "$0")/.."
CAIRN=${CAIRN_BIN:-${CARGO_TARGET_DIR:-target}/release/cairn}
[ -x "$CAIRN" ] || { echo "build first: cargo build --release --bin cairn" >&2; exit 1; }
CHECK_PERF=${1:-}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
