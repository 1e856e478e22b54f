#!/bin/sh
# The parameters go out to the workers from the coordinator's own buffer (lent
# to the writes, not copied). A worker that stops reading keeps such a write
# queued past the step's end: the apply must then go on with a copy, and the
# run stay byte-identical to the undisturbed run. Once more than the high
# water (32 MiB) waits for that worker, it takes no more StepParams, so what it
# holds stays bounded. The model is the default one, so that the 13 MB of
# parameters cannot fit in the socket's buffers.
. "$(dirname "$0")/cluster.inc"

write_experiment "$T/exp.ini" model.encoder_widths=1024,1024,512 model.proj_hidden=1024 \
	model.proj_dim=128 model.pred_hidden=1024 data.train_limit=2048 data.batch_size=32 \
	data.shard_size=32 optim.epochs=1 optim.warmup_epochs=0 eval.knn_every_epochs=0 eval.probe=false \
	checkpoint.every_steps=1000 checkpoint.keep=1
TOTAL=64
timeout 120 "$WORKER" --local "$T/exp.ini" --threads 1 --quiet \
	--checkpoint "$T/ref.safetensors" >/dev/null 2>"$T/local.log" ||
	fail "byol-worker --local failed: $(tail -n 3 "$T/local.log")"

start_daemon
start_worker w1 --threads 1
submit_background
wait_step "$RUN" 2
"$PY" "$E2E_DIR/fakepeer.py" deaf "$ADDR" --timeout 100 >"$T/deaf.log" 2>&1 &
PIDS="$PIDS $!"
rc=0; wait "$SUBMIT" || rc=$?
[ $rc = 0 ] || fail "submit --wait exited $rc: $(cat "$T/submit.err")"

J=$(run_json "$RUN")
[ "$(json_get "$J" status)" = completed ] || fail "run $RUN is not completed: $J"
metrics_check "$RUN" $TOTAL
grep -q "reading nothing more" "$T/deaf.log" ||
	fail "the deaf worker never got its first parameters: $(cat "$T/deaf.log")"
grep -q "write of the parameters still queued (a congested worker): the apply goes on with a copy" \
	"$T/byold.log" || fail "no apply went on with a copy of the parameters"
n=$(grep -c 'goes on with a copy' "$T/byold.log")
[ "$n" -le 3 ] || fail "$n StepParams were queued for the deaf worker: its queue is not bounded"
ctl workers >"$T/workers.out" || fail "byolctl workers failed"
grep "^deaf " "$T/workers.out" | grep -q " congested " ||
	fail "byolctl workers does not show the deaf worker congested: $(cat "$T/workers.out")"
CK=$(latest_checkpoint "$RUN")
cmp "$CK" "$T/ref.safetensors" || fail "the run with a deaf worker differs from the undisturbed run"
kill -0 "$DAEMON_PID" || fail "byold died"
echo "lent_params: ok (run $RUN; $n applies with a copy)"
