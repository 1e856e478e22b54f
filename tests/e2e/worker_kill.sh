#!/bin/sh
# A worker SIGKILLed in the middle of a run: its tree nodes go to the worker
# that remains, the run completes, and its final checkpoint is byte-identical to
# the undisturbed run's (byol-worker --local, which determinism.sh shows equal
# to a cluster's); every step has exactly one metric row.
. "$(dirname "$0")/cluster.inc"

LONG="data.train_limit=4096 data.batch_size=256 optim.epochs=6 eval.knn_every_epochs=0
eval.probe=false checkpoint.every_steps=16 checkpoint.keep=2"
write_experiment "$T/exp.ini" $LONG
TOTAL=96
timeout 60 "$WORKER" --local "$T/exp.ini" --threads 1 --quiet --checkpoint "$T/ref.safetensors" \
	>/dev/null 2>"$T/local.log" || fail "byol-worker --local failed"

start_daemon
start_worker w1 --threads 1
start_worker w2 --threads 1
ctl submit "$T/exp.ini" --wait >"$T/submit.out" 2>"$T/submit.err" &
SUBMIT=$!
PIDS="$PIDS $SUBMIT"
i=0
until [ -s "$T/submit.out" ]; do
	i=$((i + 1)); [ $i -lt 100 ] || fail "no run id from submit"; sleep 0.1
done
RUN=$(head -n1 "$T/submit.out")
wait_step "$RUN" 6
kill_worker w2
echo "killed w2 at step $(json_get "$(run_json "$RUN")" step) of $TOTAL" >&2
rc=0; wait "$SUBMIT" || rc=$?
[ $rc = 0 ] || fail "submit --wait exited $rc: $(cat "$T/submit.err")"

J=$(run_json "$RUN")
[ "$(json_get "$J" status)" = completed ] || fail "run $RUN is not completed: $J"
s=$(json_get "$J" step)
[ "$s" = $TOTAL ] || fail "run $RUN ended at step $s, expected $TOTAL"
metrics_check "$RUN" $TOTAL
CK=$(latest_checkpoint "$RUN")
cmp "$CK" "$T/ref.safetensors" || fail "the run that lost a worker differs from the undisturbed run"
grep -q "disconnected\|stopping" "$T/w1.log" && fail "w1 lost its connection: $(grep disconnected "$T/w1.log")"
echo "worker_kill: ok (run $RUN)"
