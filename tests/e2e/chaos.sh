#!/bin/sh
# Two chaotic workers (tests/e2e/chaosworker.py: well-framed nonsense of every
# kind a worker can send, reconnecting whenever byold closes them) beside two
# real workers, for 2 s before a run, during it and after it: byold closes each
# bad connection with a reason, never dies, and the run completes byte-identical
# to the undisturbed run. Two chaotic clients (tests/e2e/chaosclient.py: random
# requests of every kind, broken submits, odd filters, reading the answers or
# not) meanwhile: byold answers or closes them, and is still serving
# afterwards. CHAOS_SEEDS="3 4" runs other series.
. "$(dirname "$0")/cluster.inc"

long_experiment 1000 1
write_daemon_conf node_timeout_ms=1000 heartbeat_ms=200
start_daemon --config "$T/byold.conf"
start_worker w1 --threads 1
start_worker w2 --threads 1
for s in ${CHAOS_SEEDS:-1 2}; do
	"$PY" "$E2E_DIR/chaosworker.py" "$ADDR" "$s" 60 >"$T/chaos$s.log" 2>&1 &
	PIDS="$PIDS $!"
done
sleep 2
submit_background
for s in ${CHAOS_SEEDS:-1 2}; do
	"$PY" "$E2E_DIR/chaosclient.py" "$ADDR" "$s" 8 "$RUN" >"$T/client$s.log" 2>&1 &
	CLIENTS="${CLIENTS:-} $!"
done
PIDS="$PIDS $CLIENTS"
rc=0; wait "$SUBMIT" || rc=$?
[ $rc = 0 ] || fail "submit --wait exited $rc: $(cat "$T/submit.err")"
for c in $CLIENTS; do wait "$c" || fail "a chaotic client failed: $(cat "$T"/client*.log)"; done
J=$(run_json "$RUN")
[ "$(json_get "$J" status)" = completed ] || fail "run $RUN is not completed: $J"
metrics_check "$RUN" $TOTAL
CK=$(latest_checkpoint "$RUN")
cmp "$CK" "$T/ref.safetensors" || fail "the run beside chaotic workers differs from the undisturbed run"
sleep 1
kill -0 "$DAEMON_PID" || fail "byold died"
ctl list >/dev/null || fail "byold does not answer after the chaos"
closed=$(grep -c "conn [0-9]* .* chaos" "$T/byold.log" || true)
[ "$closed" -ge 20 ] || fail "only $closed chaotic connections were closed: $(tail -n 5 "$T"/chaos*.log)"
grep -q "left:" "$T/w1.log" "$T/w2.log" && fail "a real worker lost its connection"
ev=$(db "SELECT count(*) FROM events WHERE message LIKE 'worker chaos %'")
[ "$ev" -le 300 ] || fail "$ev events for the chaotic workers' comings and goings (at most 300 a minute)"
echo "chaos: ok (run $RUN; $closed chaotic worker connections closed with a reason)"
cat "$T"/client*.log
