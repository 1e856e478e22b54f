#!/bin/sh
# A full disk under byold: its state directory is a small tmpfs.
#
# 1. Checkpoints: a filler file leaves room for the store and one and a half
#    checkpoints. The checkpoint of step 4 fits; those of steps 8 and 12 fail
#    with ENOSPC (an error in the log and a run event), their temp files are
#    removed, the run goes on; the final one (step 16) fails too and the run
#    waits, trying again once there is room for it. Meanwhile the checkpoint of step 4 is intact (its
#    sha256 is the one in the store) and every checkpoint row names a whole
#    file. Once the filler is gone the final checkpoint is written, and it has
#    the bytes of `byol-worker --local`.
# 2. The store: with the disk filled to the last byte, the first step's metrics
#    row cannot be committed; the daemon stays up, answers byolctl (refuses a
#    submission, saying why), and holds the run before its next step (no step
#    runs ahead of its row); the rows committed before are intact. Once space is freed the run goes on and ends
#    with one metrics row per step and the reference bytes.
# 3. A stop while the run waits for the store: SIGTERM ends byold promptly
#    (no checkpoint past the step without its row); restarted with space, the
#    run is done again from its start and ends with every row and the bytes.
#
# Needs root (mount -t tmpfs); skips with a message otherwise.
. "$(dirname "$0")/cluster.inc"

if [ "$(id -u)" != 0 ]; then
	echo "SKIP: disk_full: mounting a tmpfs needs root"
	exit 0
fi
mkdir -p "$T/state"
if ! mount -t tmpfs -o size=64m,mode=0700 byold-disk-full "$T/state" 2>"$T/mount.err"; then
	echo "SKIP: disk_full: cannot mount a tmpfs here: $(cat "$T/mount.err")"
	exit 0
fi
umount_state() {
	for p in $PIDS; do kill -9 "$p" 2>/dev/null || true; done
	for p in $PIDS; do wait "$p" 2>/dev/null || true; done
	umount "$T/state" 2>/dev/null || umount -l "$T/state" 2>/dev/null || true
}
trap 'rc=$?; set +e; umount_state; (exit $rc); cleanup' EXIT

# 16 steps of 64 images, a checkpoint every 4 (keep 2); the 512-256 encoder
# makes a checkpoint (~6.3 MiB) much larger than what the store adds meanwhile
write_experiment "$T/exp.ini" data.train_limit=256 data.batch_size=64 \
	model.encoder_widths=512,256 optim.epochs=4 checkpoint.every_steps=4 checkpoint.keep=2 \
	eval.knn_every_epochs=0 eval.probe=false
timeout 60 "$WORKER" --local "$T/exp.ini" --threads 1 --quiet --checkpoint "$T/ref.safetensors" \
	>/dev/null 2>"$T/local.log" || fail "byol-worker --local failed"
S=$(wc -c <"$T/ref.safetensors")

avail() {
	df -B1 --output=avail "$T/state" | tail -n 1 | tr -d ' '
}


# wait_status RUN STATUS: waits (60 s at most) until the run has that status
wait_status() {
	i=0
	until [ "$(json_get "$(run_json "$1")" status)" = "$2" ]; do
		i=$((i + 1))
		[ $i -lt 600 ] || fail "run $1 is not $2: $(ctl status "$1")"
		kill -0 "$DAEMON_PID" 2>/dev/null || fail "byold exited"
		sleep 0.1
	done
}

# checkpoints_whole RUN: every checkpoint row of the run names a file whose
# size and sha256 are the row's; prints the steps
checkpoints_whole() {
	db "SELECT step, path, sha256, bytes FROM checkpoints WHERE run_id = $1 ORDER BY step;" \
		>"$T/rows"
	while IFS='|' read -r step path sha bytes; do
		[ -f "$path" ] || fail "run $1: the checkpoint row of step $step names $path, which is missing"
		[ "$(wc -c <"$path")" = "$bytes" ] ||
			fail "run $1: $path has $(wc -c <"$path") bytes, its row says $bytes"
		[ "$(sha256sum "$path" | cut -d ' ' -f 1)" = "$sha" ] ||
			fail "run $1: the sha256 of $path is not the one in its row"
		printf '%s ' "$step"
	done <"$T/rows"
}

no_temp_files() {
	left=$(find "$T/state/runs" -name '*.tmp' | tr '\n' ' ')
	[ -z "$left" ] || fail "temp files left: $left"
}

# the run on hold tries again every heartbeat: 0.5 s here
printf '[byold]\nheartbeat_ms = 500\nworker_timeout_ms = 30000\n' >"$T/byold.conf"
start_daemon --config "$T/byold.conf"
start_worker w1 --threads 1

# ---- 1. the checkpoints do not fit ----
room=$((S + S / 2))
fill=$(( $(avail) - room ))
[ "$fill" -gt 0 ] || fail "the tmpfs has $(avail) bytes free; $room are needed"
head -c "$fill" /dev/zero >"$T/state/filler"
ctl submit "$T/exp.ini" >"$T/submit1.out" 2>"$T/submit1.err" ||
	fail "submit: $(cat "$T/submit1.err")"
RUN1=$(head -n 1 "$T/submit1.out")
logged "run $RUN1: the checkpoint at step 16 failed: .*No space left on device; the checkpoint of step 4 stays .*; the run waits, trying again" 60

grep -q "run $RUN1: the checkpoint at step 8 failed: .*step-8.safetensors.tmp: write: No space left on device; the checkpoint of step 4 stays" \
	"$T/byold.log" || fail "no ENOSPC line for the checkpoint of step 8 in byold's log"
n=$(db "SELECT count(*) FROM events WHERE run_id = $RUN1 AND level = 'error' AND
	message LIKE '%checkpoint at step 8 failed%No space left on device%';")
[ "$n" = 1 ] || fail "run $RUN1: $n error events for the checkpoint of step 8, expected 1"
n=$(db "SELECT count(*) FROM events WHERE run_id = $RUN1 AND level = 'error' AND
	message LIKE '%checkpoint at step 16 failed%No space left on device%the run waits%';")
[ "$n" = 1 ] || fail "run $RUN1: $n error events for the final checkpoint, expected 1"
[ "$(checkpoints_whole "$RUN1")" = "4 " ] ||
	fail "run $RUN1: checkpoint rows for steps '$(checkpoints_whole "$RUN1")', expected 4 only"
no_temp_files
J=$(run_json "$RUN1")
[ "$(json_get "$J" status)" = running ] && [ "$(json_get "$J" step)" = 16 ] ||
	fail "run $RUN1 while its final checkpoint waits: $J"
[ "$(json_get "$J" checkpoint_step)" = 4 ] || fail "run $RUN1: latest checkpoint: $J"

# the next attempts wait for room rather than fill the disk again
logged "run $RUN1: the checkpoint at step 16 waits for space: .*less free space than the [0-9]* bytes of the last checkpoint" 10
no_temp_files
rm "$T/state/filler"
wait_status "$RUN1" completed
logged "run $RUN1: on disk again after"
[ "$(checkpoints_whole "$RUN1")" = "4 16 " ] ||
	fail "run $RUN1: checkpoint rows for steps '$(checkpoints_whole "$RUN1")', expected 4 16"
C1=$(latest_checkpoint "$RUN1")
cmp "$C1" "$T/ref.safetensors" || fail "run $RUN1: the final checkpoint differs from the reference"
metrics_check "$RUN1" 16
no_temp_files
echo "1: checkpoints of steps 8, 12 and 16 failed with ENOSPC; step 4 kept; step 16 written once space was freed"

# ---- 2. the store cannot commit ----
kill_worker w1
ctl submit "$T/exp.ini" >"$T/submit2.out" 2>"$T/submit2.err" ||
	fail "submit: $(cat "$T/submit2.err")"
RUN2=$(head -n 1 "$T/submit2.out")
logged "run $RUN2 (e2e): byol mlp"       # set up; no step without a worker
dd if=/dev/zero of="$T/state/filler" bs=64k 2>/dev/null || true
[ "$(avail)" = 0 ] || fail "the tmpfs still has $(avail) bytes free"
start_worker w2 --threads 1
logged "run $RUN2: the metrics of step 0 cannot be recorded: .*database or disk is full; the run waits"
# held: byold stays up and answers, and no later step is applied (after
# several retries, one every heartbeat)
sleep 2
kill -0 "$DAEMON_PID" 2>/dev/null || fail "byold exited with the disk full"
ctl list >/dev/null || fail "byolctl list got no answer with the disk full"
s=$(json_get "$(run_json "$RUN2")" step)
[ "$s" = 1 ] || fail "run $RUN2 went on to step $s without its metrics row of step 0"
if grep -q "run $RUN2: the metrics of step [1-9]" "$T/byold.log"; then
	fail "run $RUN2 applied a step after the one whose row is missing"
fi
# a submission meanwhile is refused with the reason, and leaves nothing behind
rc=0; ctl submit "$T/exp.ini" >"$T/submit-full.out" 2>"$T/submit-full.err" || rc=$?
[ $rc = 1 ] && grep -q "database or disk is full" "$T/submit-full.err" ||
	fail "submit with the disk full: exit $rc, $(cat "$T/submit-full.out" "$T/submit-full.err")"
[ "$(db 'SELECT count(*) FROM runs;')" = 2 ] || fail "the refused submission left a run row"
[ "$(db 'PRAGMA integrity_check;')" = ok ] || fail "the store fails its integrity check"
metrics_check "$RUN1" 16
[ "$(checkpoints_whole "$RUN1")" = "4 16 " ] || fail "run $RUN1's checkpoints changed"
no_temp_files

rm "$T/state/filler"
wait_status "$RUN2" completed
logged "run $RUN2: on disk again after"
n=$(db "SELECT count(*) FROM events WHERE run_id = $RUN2 AND
	message LIKE '%on disk again%database or disk is full%';")
[ "$n" = 1 ] || fail "run $RUN2: no event of the store's recovery"
metrics_check "$RUN2" 16
C2=$(latest_checkpoint "$RUN2")
cmp "$C2" "$T/ref.safetensors" || fail "run $RUN2: the final checkpoint differs from the reference"
checkpoints_whole "$RUN2" >/dev/null
no_temp_files
[ "$(db 'PRAGMA integrity_check;')" = ok ] || fail "the store fails its integrity check"
# w2 joined while nothing could be written: its row and its shards are there now
[ "$(db "SELECT count(*) FROM workers WHERE name = 'w2';")" = 1 ] ||
	fail "worker w2, which joined with the disk full, has no workers row"
n=$(db "SELECT shards FROM run_workers WHERE run_id = $RUN2 AND worker = 'w2';")
[ "${n:-0}" -gt 0 ] || fail "run $RUN2: the shards of w2 were not recorded"
echo "2: the metrics row of step 0 waited for the store; 16 rows, reference bytes"

# ---- 3. SIGTERM while the run waits for the store ----
kill_worker w2
ctl submit "$T/exp.ini" >"$T/submit3.out" 2>"$T/submit3.err" ||
	fail "submit: $(cat "$T/submit3.err")"
RUN3=$(head -n 1 "$T/submit3.out")
logged "run $RUN3 (e2e): byol mlp"
dd if=/dev/zero of="$T/state/filler" bs=64k 2>/dev/null || true
[ "$(avail)" = 0 ] || fail "the tmpfs still has $(avail) bytes free"
start_worker w3 --threads 1
logged "run $RUN3: the metrics of step 0 cannot be recorded: .*database or disk is full; the run waits"
kill -TERM "$DAEMON_PID"
i=0
while kill -0 "$DAEMON_PID" 2>/dev/null; do
	i=$((i + 1))
	[ $i -lt 150 ] || fail "byold did not stop within 15 s of SIGTERM while the run waited"
	sleep 0.1
done
stop_ds=$i
rc=0; wait "$DAEMON_PID" || rc=$?
[ $rc = 0 ] || fail "byold exited $rc after SIGTERM"
grep -q "run $RUN3: stops without the metrics of step 0; the run will compute that step again" \
	"$T/byold.log" || fail "no line about the step stopped without its metrics row"
[ -z "$(db "SELECT step FROM checkpoints WHERE run_id = $RUN3;")" ] ||
	fail "run $RUN3 has a checkpoint past its missing metrics row"
no_temp_files
rm "$T/state/filler"
kill_worker w3
restart_daemon
start_worker w4 --threads 1
wait_status "$RUN3" completed
metrics_check "$RUN3" 16
C3=$(latest_checkpoint "$RUN3")
cmp "$C3" "$T/ref.safetensors" || fail "run $RUN3: the final checkpoint differs from the reference"
checkpoints_whole "$RUN3" >/dev/null
[ "$(db 'PRAGMA integrity_check;')" = ok ] || fail "the store fails its integrity check"
echo "3: SIGTERM while waiting for the store: stopped in $((stop_ds / 10)).$((stop_ds % 10)) s; resumed, 16 rows, reference bytes"
echo "disk_full: ok (checkpoint $S bytes on a 64 MiB tmpfs)"
