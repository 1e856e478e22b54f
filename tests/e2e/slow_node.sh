#!/bin/sh
# A worker whose compute hangs while its heartbeats go on: the tree node it
# holds goes to the other worker as well after node_timeout_ms, the run
# completes byte-identical to the undisturbed run, and the hung worker is given
# no more work until it answers. Without the backup the run would wait for it
# forever. Here it answers its first node at last, after 1.5 s: that result is
# ignored (the node was answered), the worker takes work again (and hangs
# again), and nothing else changes.
. "$(dirname "$0")/cluster.inc"

# long_experiment's run, 4 times as long, so that it outlasts the late answer
write_experiment "$T/exp.ini" data.train_limit=4096 data.batch_size=256 optim.epochs=24 \
	eval.knn_every_epochs=0 eval.probe=false checkpoint.every_steps=1000 checkpoint.keep=1
TOTAL=384
timeout 100 "$WORKER" --local "$T/exp.ini" --threads 1 --quiet \
	--checkpoint "$T/ref.safetensors" >/dev/null 2>"$T/local.log" ||
	fail "byol-worker --local failed"
write_daemon_conf node_timeout_ms=1000 heartbeat_ms=200
start_daemon --config "$T/byold.conf"
start_worker w1 --threads 1
"$PY" "$E2E_DIR/fakepeer.py" hang "$ADDR" --timeout 120 --late 1.5 >"$T/hang.log" 2>&1 &
PIDS="$PIDS $!"
logged "worker w1 joined" 10
logged "worker hang joined" 10
submit_completed "$T/exp.ini"
metrics_check "$RUN" $TOTAL
n=$(grep -c "not answering" "$T/hang.log" || true)
[ "$n" -ge 1 ] || fail "the hung worker was given no node: $(cat "$T/hang.log")"
[ "$n" -le 2 ] || fail "the hung worker was given $n nodes: one before its late answer, one after"
grep -q "answered the first node late" "$T/hang.log" ||
	fail "the run ended before the hung worker's late answer: $(cat "$T/hang.log")"
grep -q "worker hang: NodeResult .*ignored" "$T/byold.log" ||
	fail "the late NodeResult was not ignored"
grep -q "conn .* hang: .*NodeResult" "$T/byold.log" &&
	fail "the late NodeResult closed the connection: $(grep 'conn .* hang' "$T/byold.log")"
grep -q "worker hang has not answered .* worker w1 computes it too" "$T/byold.log" ||
	fail "no node went to w1 as well"
ctl workers >"$T/workers.out" || fail "byolctl workers failed"
grep "^hang " "$T/workers.out" | grep -q " stalled " ||
	fail "byolctl workers does not show the hung worker stalled: $(cat "$T/workers.out")"
CK=$(latest_checkpoint "$RUN")
cmp "$CK" "$T/ref.safetensors" || fail "the run with a hung worker differs from the undisturbed run"
echo "slow_node: ok (run $RUN; the hung worker held $n node(s))"
