#!/bin/sh
# A checkpoint renamed into place whose directory fsync then fails (the one
# step of a checkpoint write that comes after the rename): the file may not
# survive a crash, so byold must treat it as failed — not record it, and not
# leave it on disk either (no file outlives its row). An LD_PRELOAD shim
# (tests/shim/fsync_shim.c, fail-dir) makes fsync of the run directories fail with
# EIO while a flag file exists.
#
# While it fails: every checkpoint is reported with the fsync's reason, no
# checkpoint row is written, no checkpoint file is left, and the run waits at
# its final checkpoint. Once fsync works again: the run completes with the
# bytes of `byol-worker --local`, and its rows name whole files.
. "$(dirname "$0")/cluster.inc"


write_experiment "$T/exp.ini" data.train_limit=256 data.batch_size=64 optim.epochs=4 \
	checkpoint.every_steps=4 checkpoint.keep=2 eval.knn_every_epochs=0 eval.probe=false
timeout 60 "$WORKER" --local "$T/exp.ini" --threads 1 --quiet --checkpoint "$T/ref.safetensors" \
	>/dev/null 2>"$T/local.log" || fail "byol-worker --local failed"


touch "$T/fail-fsync"
printf '[byold]\nheartbeat_ms = 500\n' >"$T/byold.conf"
start_daemon_with_fsync_shim fail-dir "$T/fail-fsync" --config "$T/byold.conf"
start_worker w1 --threads 1
RUN=$(ctl submit "$T/exp.ini" | tail -n 1)

logged "run $RUN: the checkpoint at step 4 failed: .*fsync of directory.*Input/output error"
logged "run $RUN: the checkpoint at step 16 failed"
grep "checkpoint at step 4 failed" "$T/byold.log" | grep -q "the file is deleted" ||
	fail "the log does not say the unrecorded file was deleted"
sleep 1    # a retry or two of the final checkpoint, failing the same way
ROWS=$(db "SELECT count(*) FROM checkpoints WHERE run_id = $RUN;")
[ "$ROWS" = 0 ] || fail "$ROWS checkpoint rows recorded while the directory fsync fails"
LEFT=$(find "$T/state/runs" -name '*.safetensors*' | tr '\n' ' ')
[ -z "$LEFT" ] || fail "checkpoint files left without a row: $LEFT"
STATUS=$(json_get "$(run_json "$RUN")" status)
[ "$STATUS" = running ] || fail "run $RUN is '$STATUS' while its final checkpoint fails, not running"
echo "fsync of the run directory failing: no row, no file left, run $RUN waits" >&2

rm "$T/fail-fsync"
i=0
until [ "$(json_get "$(run_json "$RUN")" status)" = completed ]; do
	i=$((i + 1)); [ $i -lt 300 ] || fail "run $RUN did not complete once fsync worked"
	sleep 0.1
done
CK=$(latest_checkpoint "$RUN")
cmp "$CK" "$T/ref.safetensors" || fail "the final checkpoint differs from byol-worker --local"
db "SELECT path, bytes FROM checkpoints WHERE run_id = $RUN;" | while IFS='|' read -r p b; do
	[ -f "$p" ] && [ "$(wc -c <"$p")" = "$b" ] || fail "row for $p: no such file of $b bytes"
done
echo "dir_fsync: ok (run $RUN)"
