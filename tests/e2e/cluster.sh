#!/bin/sh
# Two workers (one on TCP, one on the Unix socket) train a small run to the end
# through `byolctl submit --wait`, the way a user runs byold: the run completes, SQLite holds one metric row per step
# (no gap, no duplicate) and its evaluations, the final checkpoint that
# `byolctl status --json` names loads and evaluates, and both workers served it.
. "$(dirname "$0")/cluster.inc"

write_experiment "$T/exp.ini"
start_daemon
start_worker w1 --threads 1
start_worker_socket w2 --threads 1

ctl submit "$T/exp.ini" --wait >"$T/submit.out" 2>"$T/submit.err" ||
	fail "submit --wait exited $?: $(cat "$T/submit.err")"
[ "$(wc -l <"$T/submit.out")" -eq 1 ] || fail "expected one run id, got: $(cat "$T/submit.out")"
RUN=$(cat "$T/submit.out")

J=$(run_json "$RUN") || fail "status --json failed"
[ "$(json_get "$J" status)" = completed ] || fail "run $RUN is not completed: $J"
[ "$(json_get "$J" step)" = 8 ] && [ "$(json_get "$J" total_steps)" = 8 ] ||
	fail "run $RUN: expected step 8/8: $J"
metrics_check "$RUN" 8
# the metric rows are real figures
bad=$(db "SELECT count(*) FROM metrics WHERE run_id = $RUN AND NOT (loss > 0 AND lr >= 0 AND tau > 0.9);")
[ "$bad" = 0 ] || fail "$bad metric rows with implausible loss/lr/tau"
# evaluations: the final kNN and probe at step 8 (and the periodic kNN)
for kind in knn probe; do
	v=$(db "SELECT value FROM evals WHERE run_id = $RUN AND step = 8 AND kind = '$kind';")
	"$PY" -c "import sys; v = float(sys.argv[1]); assert 0.3 < v <= 1, v" "${v:-0}" ||
		fail "run $RUN: final $kind accuracy '$v'"
done

CK=$(json_get "$J" checkpoint)
[ -n "$CK" ] || fail "byolctl status --json names no checkpoint: $J"
[ -f "$CK" ] || fail "checkpoint $CK does not exist"
[ "$(checkpoint_step "$CK")" = 8 ] || fail "checkpoint $CK is not at step 8"
timeout 60 "$WORKER" --local "$T/exp.ini" --eval "$CK" >"$T/eval.json" 2>"$T/eval.err" ||
	fail "byol-worker --eval $CK failed: $(cat "$T/eval.err")"
"$PY" - "$T/eval.json" <<'PY' || fail "bad evaluation of the checkpoint: $(cat "$T/eval.json")"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["steps"] == 8, r
assert 0.3 < r["knn_acc"] <= 1 and 0.3 < r["probe_acc"] <= 1, r
PY

# both workers served the run
n=$(db "SELECT count(*) FROM run_workers WHERE run_id = $RUN AND shards > 0;")
[ "$n" = 2 ] || fail "run $RUN: $n workers recorded as serving it, expected 2"
# the human forms
ctl status "$RUN" | grep -q "completed" || fail "status without 'completed': $(ctl status "$RUN")"
ctl list | grep -q "^$RUN[[:space:]]" || fail "list does not show run $RUN: $(ctl list)"
# the Unix socket, named or from $BYOLD_SOCKET
"$BYOLCTL" --socket "$T/state/byold.sock" status "$RUN" | grep -q completed ||
	fail "status over --socket failed"
BYOLD_SOCKET="$T/state/byold.sock" "$BYOLCTL" list | grep -q "^$RUN[[:space:]]" ||
	fail "list over \$BYOLD_SOCKET failed"
# unknown run, bad usage
if ctl status 999 >/dev/null 2>&1; then fail "status of an unknown run succeeded"; fi
rc=0; ctl status >/dev/null 2>&1 || rc=$?
[ $rc = 2 ] || fail "status without a run id exited $rc, expected 2"
# a bad line is named before contacting the daemon (none is listening there)
printf '[model]\nencoder_norm = bm\n' >"$T/bad.ini"
rc=0; "$BYOLCTL" --coordinator 127.0.0.1:1 submit "$T/bad.ini" 2>"$T/bad.err" || rc=$?
[ $rc = 1 ] && grep -q "bad.ini:2:" "$T/bad.err" || fail "bad.ini: exit $rc, $(cat "$T/bad.err")"
rc=0; "$BYOLCTL" --coordinator 127.0.0.1:1 list 2>"$T/unreach.err" || rc=$?
[ $rc = 3 ] && grep -q "127.0.0.1:1" "$T/unreach.err" ||
	fail "unreachable daemon: exit $rc, $(cat "$T/unreach.err")"
# workers end cleanly on SIGTERM and SIGINT (exit 0)
for sig_w in TERM:w1 INT:w2; do
	sig=${sig_w%%:*}; w=${sig_w#*:}
	pid=$(cat "$T/$w.pid")
	kill -"$sig" "$pid"
	rc=0; wait "$pid" || rc=$?
	[ $rc = 0 ] || fail "$w exited $rc on SIG$sig"
	grep -q "stopped" "$T/$w.log" || fail "$w did not log its stop"
done
echo "cluster: ok (run $RUN)"
