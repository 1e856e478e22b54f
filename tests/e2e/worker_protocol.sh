#!/bin/sh
# byol-worker against a scripted coordinator (fakecoord.py): RunSetup counts
# checked and refused with a reason, tree nodes computed and answered with the
# right sizes (the same bytes when a node is asked twice), the target replica
# moved by the worker, every malformed tensor or out-of-turn assignment answered
# by dropping the connection and reconnecting, evaluations answered; then
# SIGTERM ends the worker with status 0.
set -eu
BIN=${BIN:-bin}
W="$BIN/byol-worker"
T=$(mktemp -d "${TMPDIR:-/tmp}/byold-wp.XXXXXX")
PIDS=""
trap 'for p in $PIDS; do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; echo "---- worker log" >&2; tail -n 30 "$T/worker.log" >&2; exit 1; }
if [ -x /usr/bin/python3 ]; then PY=/usr/bin/python3; else PY=python3; fi
if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
	echo "SKIP: Fashion-MNIST is not installed (scripts/deps.sh installs it)"
	exit 0
fi

cat >"$T/exp.json" <<'JSON'
{"experiment":{"name":"wp","seed":3},
 "data":{"train_limit":512,"batch_size":128,"shard_size":32},
 "model":{"encoder_widths":[64,32],"proj_hidden":64,"proj_dim":16,"pred_hidden":64},
 "eval":{"knn_k":20}}
JSON
timeout 120 "$PY" "$(dirname "$0")/fakecoord.py" "$T/port" "$T/exp.json" >"$T/coord.out" 2>&1 &
COORD=$!
PIDS="$COORD"
i=0
until [ -s "$T/port" ]; do
	i=$((i + 1)); [ $i -lt 100 ] || fail "fakecoord did not start: $(cat "$T/coord.out")"; sleep 0.1
done
"$W" --coordinator "127.0.0.1:$(cat "$T/port")" --threads 2 --name wp >"$T/worker.log" 2>&1 &
WPID=$!
PIDS="$PIDS $WPID"
rc=0; wait "$COORD" || rc=$?
cat "$T/coord.out"
[ $rc = 0 ] || fail "fakecoord: exit $rc"
for reason in "target replica is at step 1" "online of" "has the parameters of step -1" \
	"is not a node of the 4-shard tree"; do
	grep -q "$reason" "$T/worker.log" || fail "the worker did not log '$reason'"
done
kill -TERM "$WPID"
rc=0; wait "$WPID" || rc=$?
[ $rc = 0 ] || fail "the worker exited $rc on SIGTERM"
grep -q "stopped" "$T/worker.log" || fail "no 'stopped' in the worker's log"
echo "worker_protocol: ok"
