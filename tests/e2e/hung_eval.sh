#!/bin/sh
# A worker that never answers its final evaluation although its heartbeats go
# on (its EvalJob is lost in a proxy): after eval_timeout_ms the job goes to the
# other worker, the run completes with its kNN accuracy, and the first worker
# is shown stalled. Without that the run would wait for it forever. The
# daemon's heartbeat is faster than the workers' own: they must answer it.
. "$(dirname "$0")/cluster.inc"

write_experiment "$T/exp.ini" eval.knn_every_epochs=0 eval.probe=false
write_daemon_conf eval_timeout_ms=1000 heartbeat_ms=200
start_daemon --config "$T/byold.conf"
"$PY" "$E2E_DIR/dropproxy.py" "$T/proxy.port" "$ADDR" 15 >"$T/proxy.log" 2>&1 &
PIDS="$PIDS $!"
wait_file "$T/proxy.port" "the proxy did not start"
# w1 joins first, through the proxy: the final job goes to it (ties go to the
# first worker)
"$WORKER" --coordinator "127.0.0.1:$(cat "$T/proxy.port")" --name w1 --threads 1 \
	>>"$T/w1.log" 2>&1 &
PIDS="$PIDS $!"
logged "worker w1 joined" 10
start_worker w2 --threads 1
logged "worker w2 joined" 10
submit_completed "$T/exp.ini"
grep -q "dropped a message of field 15" "$T/proxy.log" ||
	fail "the final evaluation did not go to w1 first: $(cat "$T/proxy.log")"
grep -q "the final knn evaluation goes to another worker: worker w1 has not answered" \
	"$T/byold.log" || fail "the final evaluation was not taken back from w1"
grep -q "knn accuracy .* on worker w2" "$T/byold.log" || fail "w2 did not evaluate"
knn=$(json_get "$J" knn_accuracy)
case $knn in
0.* | 1) ;;
*) fail "run $RUN has no kNN accuracy: $J" ;;
esac
# heartbeat_ms = 200 is under the workers' own period (1 s): they answer each
# of the daemon's heartbeats, so none is dropped for silence
grep -q "left: no message" "$T/byold.log" && fail "a worker was dropped for silence"
ctl workers >"$T/workers.out" || fail "byolctl workers failed"
grep "^w1 " "$T/workers.out" | grep -q " stalled " ||
	fail "byolctl workers does not show w1 stalled: $(cat "$T/workers.out")"
echo "hung_eval: ok (run $RUN, kNN $knn from w2)"
