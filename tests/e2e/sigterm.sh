#!/bin/sh
# SIGTERM to the coordinator mid-run: it stops at a step boundary, writes a
# checkpoint of that step, marks the run interrupted and exits 0; started again,
# it continues the run, which completes with the bytes of the undisturbed run and
# one metric row per step.
. "$(dirname "$0")/cluster.inc"

long_experiment 50 2
start_daemon
start_worker w1 --threads 1
start_worker w2 --threads 1
RUN=$(ctl submit "$T/exp.ini" | tail -n 1)
wait_step "$RUN" 9
kill -TERM "$DAEMON_PID"
rc=0; wait "$DAEMON_PID" || rc=$?
[ $rc = 0 ] || fail "byold exited $rc on SIGTERM"
STATUS=$(db "SELECT status FROM runs WHERE id = $RUN;")
AT=$(db "SELECT step FROM runs WHERE id = $RUN;")
[ "$STATUS" = interrupted ] || fail "run $RUN is '$STATUS' after SIGTERM, not interrupted"
[ "$AT" -lt $TOTAL ] || fail "the run had finished before SIGTERM"
CK=$(db "SELECT path FROM checkpoints WHERE run_id = $RUN ORDER BY step DESC LIMIT 1;")
[ -n "$CK" ] && [ "$(checkpoint_step "$CK")" = "$AT" ] ||
	fail "no checkpoint of the boundary step $AT (latest: '$CK')"
grep -qi "stopping\|sigterm\|interrupted" "$T/byold.log" || fail "no word of the stop in the log"
echo "SIGTERM at step $AT: checkpoint $CK" >&2

restart_daemon
i=0
while :; do
	J=$(run_json "$RUN")
	[ "$(json_get "$J" status)" = completed ] && break
	i=$((i + 1)); [ $i -lt 600 ] || fail "run $RUN did not complete after the restart: $J"
	sleep 0.2
done
metrics_check "$RUN" $TOTAL
CK=$(latest_checkpoint "$RUN")
cmp "$CK" "$T/ref.safetensors" || fail "the resumed run differs from the undisturbed run"
echo "sigterm: ok (run $RUN, stopped at step $AT)"
