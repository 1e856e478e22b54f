#!/bin/sh
# A real distributed byold run on this machine: installs what is missing, builds,
# starts the coordinator and two workers on loopback (state in a temp directory,
# or $DEMO_STATE), submits deploy/examples/byol-fmnist.ini (Fashion-MNIST, BYOL,
# the embedded defaults) and follows it to the end, then prints the run's status
# and where its SQLite store and checkpoints are: a live progress bar while it
# trains (byolctl watch), then the run's row of the history (byolctl history).
# Extra arguments go to `byolctl submit`, e.g.:  scripts/demo.sh --set optim.epochs=1
set -eu
cd "$(dirname "$0")/.."
scripts/deps.sh
make -s -j2
STATE=${DEMO_STATE:-$(mktemp -d "${TMPDIR:-/tmp}/byold-demo.XXXXXX")}
SOCK="$STATE/byold.sock"
PORT=${DEMO_PORT:-7070}
pids=""
stop() {
	for p in $pids; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap stop EXIT
trap 'exit 1' INT TERM

bin/byold --state-dir "$STATE" --listen "127.0.0.1:$PORT" --socket "$SOCK" \
	2>"$STATE/byold.log" &
pids="$pids $!"
for i in $(seq 50); do [ -S "$SOCK" ] && break; sleep 0.1; done
[ -S "$SOCK" ] || { cat "$STATE/byold.log" >&2; exit 1; }
for w in 1 2; do
	bin/byol-worker --coordinator "127.0.0.1:$PORT" --threads 1 --name "demo-w$w" \
		2>"$STATE/worker$w.log" &
	pids="$pids $!"
done
echo "byold: state in $STATE (byold.db, runs/), logs byold.log worker1.log worker2.log"
export BYOLD_SOCKET="$SOCK"
out=$(bin/byolctl submit deploy/examples/byol-fmnist.ini "$@") || exit 1
run=$(echo "$out" | tail -n 1)
echo "submitted run $run; following it (byolctl watch $run; byolctl show $run for details)"
status=0
bin/byolctl watch "$run" || status=$?
echo
echo "the run in the store (byolctl history --where 'id = $run'):"
bin/byolctl history --where "id = $run"
exit $status
