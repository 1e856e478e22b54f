#!/bin/sh
# A worker SIGKILLed in the middle of a run: its tree nodes go to the worker
# that remains, the run completes, and its final checkpoint is byte-identical to
# the undisturbed run's (byol-worker --local, which determinism.sh shows equal
# to a cluster's); every step has exactly one metric row. The killed worker
# took its tensors through shared memory (the Unix socket): byold holds its
# gradients and a room of its ring for the next parameters when it dies.
. "$(dirname "$0")/cluster.inc"

long_experiment 16 2
start_daemon
start_worker w1 --threads 1
start_worker_socket w2 --threads 1
submit_background
wait_step "$RUN" 6
grep -q "parameters arrive through shared memory" "$T/w2.log" ||
	fail "w2 (--socket) took no tensors through shared memory: $(cat "$T/w2.log")"
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
