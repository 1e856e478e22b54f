#!/bin/sh
# A client that sends 60,000 requests in a burst and reads none of the answers
# (each a few KB: the metrics of a 96-step run): byold stops reading its
# requests once 32 MiB of answers wait for it, so its memory stays bounded
# (without that it grew by 100 MB per 20,000 requests), and it goes on serving
# other clients meanwhile. Then the same with answers of 24 KB (a 384-step
# run): the requests of one read alone then outgrow twice the high water, and
# byold closes that client.
. "$(dirname "$0")/cluster.inc"

long_experiment 1000 1
# under ASan, freed memory waits in its quarantine and would count as growth
DAEMON_ENV="ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=0"
start_daemon
DAEMON_ENV=""
start_worker w1 --threads 1
ctl submit "$T/exp.ini" --wait >"$T/submit.out" 2>"$T/submit.err" ||
	fail "submit --wait failed: $(cat "$T/submit.err")"
RUN=$(head -n1 "$T/submit.out")
rss() { awk '/^VmRSS/ { print $2 }' "/proc/$DAEMON_PID/status"; }
before=$(rss)
"$PY" "$E2E_DIR/fakepeer.py" greedy "$ADDR" --requests 60000 --run "$RUN" --hold 20 \
	>"$T/greedy.log" 2>&1 &
G=$!
PIDS="$PIDS $G"
wait_file "$T/greedy.log" "the greedy client said nothing"
# the largest RSS over 3 s (unbounded, it climbs as byold works through the
# requests: 100 MB per 20,000)
peak=$before
for i in 1 2 3 4 5 6; do
	sleep 0.5
	r=$(rss)
	[ "$r" -gt "$peak" ] && peak=$r
done
ctl list >"$T/list.out" || fail "byolctl list failed while the greedy client waits"
grep -q "completed" "$T/list.out" || fail "byolctl list: $(cat "$T/list.out")"
kill "$G" 2>/dev/null || true
echo "byold's RSS: $before kB before, $peak kB with the greedy client; $(cat "$T/greedy.log")" >&2
[ "$peak" -lt $((before + 80 * 1024)) ] ||
	fail "byold grew from $before kB to $peak kB for a client that reads nothing"
kill -0 "$DAEMON_PID" || fail "byold died"

write_experiment "$T/long.ini" data.train_limit=4096 data.batch_size=256 optim.epochs=24 \
	eval.knn_every_epochs=0 eval.probe=false checkpoint.every_steps=1000 checkpoint.keep=1
ctl submit "$T/long.ini" --wait >"$T/submit2.out" 2>"$T/submit2.err" ||
	fail "submit --wait failed: $(cat "$T/submit2.err")"
RUN2=$(head -n1 "$T/submit2.out")
"$PY" "$E2E_DIR/fakepeer.py" greedy "$ADDR" --requests 20000 --run "$RUN2" --hold 20 \
	>"$T/greedy2.log" 2>&1 &
G=$!
PIDS="$PIDS $G"
logged "answers wait for this client, which does not read them" 20
kill "$G" 2>/dev/null || true
ctl list >"$T/list.out" || fail "byolctl list failed after the greedy client was closed"
kill -0 "$DAEMON_PID" || fail "byold died"
echo "greedy_client: ok ($(grep -o '[0-9]* MiB of answers wait' "$T/byold.log"))"
