#!/usr/bin/env bash
# etcd 3.4's own end-to-end suite (tests/e2e of v3.4.23, as Debian ships it in
# golang-etcd-server-dev) run with `cairn` as the etcd binary and Debian's etcdctl 3.4.
#
#   e2e/etcd-suite/run.sh                  # against cairn (CAIRN_BIN, or the debug build)
#   e2e/etcd-suite/run.sh --against-etcd   # against Debian's etcd 3.4, the reference
#   e2e/etcd-suite/run.sh 'TestCtlV3Put'   # only tests whose name matches the regex
#
# Each test runs alone in its own network namespace (`unshare --net`, loopback up): the suite
# listens on fixed ports (2379, 20000...) that must not meet anything else on the machine.
# Prints a line per test and "N passed, M failed"; each test's output stays in
# $ETCD_SUITE_LOGS/<test>.log, what its servers printed in <test>.server.log and the etcdctl
# commands it ran in <test>.etcdctl.log. Against cairn, it fails on a test
# that fails and is not in expected-failures.txt, and on one listed there that now passes (so
# the list only shrinks).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"

against=cairn
filter='.*'
for arg in "$@"; do
  case "$arg" in
    --against-etcd) against=etcd ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) filter="$arg" ;;
  esac
done

work="${ETCD_SUITE_WORK:-/var/tmp/cairn-etcd-suite}"
logs="${ETCD_SUITE_LOGS:-$work/logs-$against}"
jobs="${ETCD_SUITE_JOBS:-3}"
per_test_timeout="${ETCD_SUITE_TIMEOUT:-300}"
src=/usr/share/gocode/src/go.etcd.io/etcd
mkdir -p "$work"

sudo_if_needed() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
missing=()
command -v go >/dev/null 2>&1 || missing+=(golang-go)
[ -d "$src/tests/e2e" ] || missing+=(golang-etcd-server-dev)
command -v etcdctl >/dev/null 2>&1 || missing+=(etcd-client)
command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v curl >/dev/null 2>&1 || missing+=(curl)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]}"
  sudo_if_needed apt-get update -qq
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The suite's test binary, built once per version of the Debian package (GOPATH mode: every
# dependency is under /usr/share/gocode, nothing is fetched).
version="$(dpkg-query -W -f '${Version}' golang-etcd-server-dev)"
suite="$work/e2e-$version.test"
if [ ! -x "$suite" ]; then
  echo "building etcd's e2e suite ($version)"
  (cd "$src/tests/e2e" && GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE="$work/go-cache" \
    go test -c -o "$suite.tmp" .)
  mv "$suite.tmp" "$suite"
fi

bin="$work/bin-$against"
rm -rf "$bin"
mkdir -p "$bin"
if [ "$against" = cairn ]; then
  target="$(cd "$root" && cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
  server="${CAIRN_BIN:-$target/debug/cairn}"
  [ -x "$server" ] || { echo "no cairn binary at $server: run cargo build --bins first, or set CAIRN_BIN" >&2; exit 2; }
else
  server="$(command -v etcd)"
fi
# The suite runs bin/etcd and bin/etcdctl and reads their output through a terminal. These
# wrappers keep, per test, a copy of what the servers print (the test itself prints little)
# and the etcdctl commands run (their output is in the test's own messages: copying it would
# race with the suite reading the terminal), then exec the real binary so that its signals
# and exit status stay the suite's.
cat >"$bin/etcd" <<WRAP
#!/usr/bin/env bash
echo "\$ etcd \$*" >>"\$ETCD_SUITE_OUT.server.log"
exec "$(readlink -f "$server")" "\$@" 2> >(tee -a "\$ETCD_SUITE_OUT.server.log" >&2)
WRAP
cat >"$bin/etcdctl" <<WRAP
#!/usr/bin/env bash
echo "\$ etcdctl \$*" >>"\$ETCD_SUITE_OUT.etcdctl.log"
exec "$(command -v etcdctl)" "\$@"
WRAP
chmod +x "$bin/etcd" "$bin/etcdctl"

rm -rf "$logs"
mkdir -p "$logs"
mapfile -t tests < <("$suite" -test.list "$filter" | grep '^Test')

run_one() {
  local t="$1" start end status tree
  start=$(date +%s)
  # The suite names files relative to tests/e2e of etcd's source tree (../../integration/
  # fixtures, ../../etcd.conf.yml.sample), and leaves some (unix sockets) in its directory:
  # each test gets a fresh such tree.
  tree="$(mktemp -d "$work/run.XXXXXX")"
  mkdir -p "$tree/tests/e2e"
  ln -s "$src/integration" "$tree/integration"
  cp "$here/etcd.conf.yml.sample" "$tree/etcd.conf.yml.sample"
  set +e
  ETCD_SUITE_OUT="$logs/$t" timeout -k 10 "$per_test_timeout" unshare --net bash -c \
    'ip link set lo up && cd "$4" && exec "$0" -test.run "^$1\$" -test.v -bin-dir "$2" -cert-dir "$3"' \
    "$suite" "$t" "$bin" "$src/integration/fixtures" "$tree/tests/e2e" >"$logs/$t.log" 2>&1
  local code=$?
  set -e
  rm -rf "$tree"
  end=$(date +%s)
  if grep -q -- "^--- SKIP: $t " "$logs/$t.log"; then
    status=SKIP
  elif grep -q -- "^--- PASS: $t " "$logs/$t.log" && ! grep -q -- "^--- FAIL" "$logs/$t.log" \
    && { [ $code = 0 ] || grep -q "^Too many goroutines running after all test(s)" "$logs/$t.log"; }; then
    # The suite's own leak check (goroutines of the Go test binary left reading a process
    # that outlived its test) fails now and then under load, whatever the server: the test
    # itself passed.
    status=PASS
  elif [ $code = 124 ] || [ $code = 137 ]; then
    status=FAIL-TIMEOUT
  else
    status=FAIL
  fi
  printf '%-62s %-12s %4ss\n' "$t" "$status" "$((end - start))"
}
export -f run_one
export suite bin src logs work per_test_timeout here

results="$work/results-$against.txt"
printf '%s\n' "${tests[@]}" | xargs -P "$jobs" -I{} bash -c 'run_one "$@"' _ {} | tee "$results"

passed=$(grep -c ' PASS ' "$results" || true)
failed=$(grep -c ' FAIL' "$results" || true)
skipped=$(grep -c ' SKIP ' "$results" || true)

status=0
if [ "$against" = cairn ]; then
  declare -A listed=()
  while read -r t _; do
    [ -n "$t" ] && listed[$t]=1
  done < <(grep -v '^#' "$here/expected-failures.txt")
  while read -r t _; do
    if [ -z "${listed[$t]:-}" ]; then
      echo "UNEXPECTED FAILURE: $t (see $logs/$t.log)"
      status=1
    fi
  done < <(grep ' FAIL' "$results")
  while read -r t _; do
    if [ -n "${listed[$t]:-}" ]; then
      echo "NOW PASSES, take it off expected-failures.txt: $t"
      status=1
    fi
  done < <(grep ' PASS ' "$results")
fi
echo "$passed passed, $failed failed, $skipped skipped (against $against; logs in $logs)"
exit $status
