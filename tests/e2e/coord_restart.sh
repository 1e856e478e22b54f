#!/bin/sh
# The coordinator SIGKILLed in the middle of a run and started again on the same
# state directory: it continues the run from its last checkpoint, the workers
# and the waiting `byolctl submit --wait` reconnect by themselves, the run
# completes with the bytes of the undisturbed run, and SQLite holds exactly one
# metric row per step (the recomputed steps replaced, none lost or doubled).
. "$(dirname "$0")/cluster.inc"

long_experiment 8 3
start_cluster_run
wait_step "$RUN" 11
kill_daemon
AT=$(db "SELECT step FROM runs WHERE id = $RUN;")
CKS=$(db "SELECT count(*) FROM checkpoints WHERE run_id = $RUN;")
echo "killed byold at step $AT of $TOTAL ($CKS checkpoints recorded)" >&2
[ "$AT" -lt $TOTAL ] || fail "the run had finished before the kill"
[ "$(db "SELECT status FROM runs WHERE id = $RUN;")" = running ] || fail "run not 'running' after the kill"
sleep 0.5
restart_daemon
rc=0; wait "$SUBMIT" || rc=$?
[ $rc = 0 ] || fail "submit --wait exited $rc across the restart: $(cat "$T/submit.err")"

J=$(run_json "$RUN")
[ "$(json_get "$J" status)" = completed ] || fail "run $RUN is not completed: $J"
[ "$(json_get "$J" step)" = $TOTAL ] || fail "run $RUN: expected step $TOTAL: $J"
metrics_check "$RUN" $TOTAL
CK=$(latest_checkpoint "$RUN")
[ "$(checkpoint_step "$CK")" = $TOTAL ] || fail "latest checkpoint $CK is not the final one"
cmp "$CK" "$T/ref.safetensors" || fail "the restarted run differs from the undisturbed run"
# a worker whose back-off had grown may come back after the run has ended
for w in w1 w2; do
	grep -q "connected to" "$T/$w.log" || fail "$w never connected"
	i=0
	until [ "$(grep -c "connected to $ADDR" "$T/$w.log" || true)" -ge 2 ]; do
		i=$((i + 1))
		[ $i -lt 100 ] || fail "$w did not reconnect within 10 s of the run's end"
		sleep 0.1
	done
done
echo "coord_restart: ok (run $RUN, killed at step $AT)"
