#!/bin/sh
# A cancel of the active run that must wait for the step boundary, and byold
# SIGKILLed before it comes. The wait is made certain by an LD_PRELOAD shim
# (tests/shim/fsync_shim.c, hold-file) that holds the fsync of a checkpoint
# file in byold's threadpool while a flag file exists.
#
# While the checkpoint is held, the run is running and its status message (in
# the store) says the cancel waits for the step boundary. After the kill and a
# restart, the run is cancelled (not resumed), with an event naming the pending
# cancel, and the waiting `byolctl cancel` reconnects and exits 0. `byolctl
# resume` then takes it to the end with the bytes of `byol-worker --local` and
# one metric row per step.
. "$(dirname "$0")/cluster.inc"


long_experiment 8 2
touch "$T/hold"
start_daemon_with_fsync_shim hold-file "$T/hold"
start_worker w1 --threads 1
start_worker w2 --threads 1
RUN=$(ctl submit "$T/exp.ini" | tail -n 1)

i=0
until [ -f "$T/hold.held" ]; do
	i=$((i + 1)); [ $i -lt 300 ] || fail "no checkpoint write reached fsync in 30 s"
	sleep 0.1
done
ctl cancel "$RUN" --json >"$T/cancel.json" 2>"$T/cancel.err" &
CANCEL=$!
PIDS="$PIDS $CANCEL"
i=0
PENDING="cancel requested by byolctl at step 8; waiting for the step boundary"
until [ "$(db "SELECT message FROM runs WHERE id = $RUN;")" = "$PENDING" ]; do
	i=$((i + 1))
	[ $i -lt 300 ] || fail "the store does not hold the pending cancel: '$(db "SELECT message FROM runs WHERE id = $RUN;")'"
	sleep 0.1
done
J=$(run_json "$RUN")
[ "$(json_get "$J" status)" = running ] && [ "$(json_get "$J" message)" = "$PENDING" ] ||
	fail "status while the cancel waits: $J"

kill_daemon
[ "$(db "SELECT status FROM runs WHERE id = $RUN;")" = running ] || fail "run $RUN not 'running' after the kill"
rm "$T/hold"
restart_daemon
rc=0; wait "$CANCEL" || rc=$?
[ $rc = 0 ] || fail "byolctl cancel across the restart exited $rc: $(cat "$T/cancel.err")"
J=$(cat "$T/cancel.json")
[ "$(json_get "$J" status)" = cancelled ] || fail "byolctl cancel's answer: $J"
J=$(run_json "$RUN")
[ "$(json_get "$J" status)" = cancelled ] || fail "run $RUN after the restart: $J"
case $(json_get "$J" message) in
"cancelled: byold stopped while the cancel requested by byolctl at step 8 waited for the step boundary") ;;
*) fail "run $RUN's message: $J";; esac
grep -q "run $RUN (e2e) cancelled: byold stopped while the cancel .*; its latest checkpoint is kept" \
	"$T/byold.log" || fail "no event for the pending cancel in byold's log"
[ "$(db "SELECT count(*) FROM events WHERE run_id = $RUN AND message LIKE '%its latest checkpoint is kept%';")" = 1 ] ||
	fail "no event row for the pending cancel"

ctl resume "$RUN" --watch >"$T/resume.out" 2>&1 || fail "resume of run $RUN: $(cat "$T/resume.out")"
metrics_check "$RUN" $TOTAL
cmp "$(latest_checkpoint "$RUN")" "$T/ref.safetensors" ||
	fail "run $RUN, cancelled across a restart and resumed, differs from the undisturbed run"
echo "cancel_restart: ok (run $RUN: cancel pending at step 8 when byold was killed; cancelled after the restart; resumed to step $TOTAL with the reference bytes)"
