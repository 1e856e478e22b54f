#!/bin/sh
# byolctl watch, show, cancel, resume, workers and submit --name/--watch against
# a real byold and two real workers: their human, plain and --json forms, their
# exit codes (0 completed, 1 failed / cancelled / refused, 3 unreachable), the
# progress bar on a terminal (a pty), the client's config file, a cancel of a
# queued run and of the running one (checkpoint at the boundary, the next run
# starts), and a resume of the cancelled run to completion.
E2E_LIMIT=${E2E_LIMIT:-90}
. "$(dirname "$0")/cluster.inc"

# json_check FILE PYTHON: runs PYTHON with `d` the JSON object in FILE; it
# prints a reason when a check fails
json_check() {
	why=$("$PY" -c "import json, sys
d = json.load(open(sys.argv[1]))
$2" "$1" 2>&1) || fail "$1: $why ($(head -c 600 "$1"))"
	[ -z "$why" ] || fail "$1: $why"
}

# wait_for FILE EXTENDED-REGEX: until a line of FILE matches (at most 30 s)
wait_for() {
	i=0
	until grep -Eq "$2" "$1" 2>/dev/null; do
		i=$((i + 1)); [ $i -lt 300 ] || fail "$1: no line matching '$2' in 30 s"
		sleep 0.1
	done
}

# ---- without a daemon: help, usage, unreachable ----------------------------
for c in watch show cancel resume workers submit; do
	"$BYOLCTL" "$c" --help >"$T/help.out" 2>&1 || fail "byolctl $c --help exited $?"
	grep -q "usage: byolctl .*$c" "$T/help.out" || fail "byolctl $c --help: $(cat "$T/help.out")"
done
"$BYOLCTL" --help | grep -q 'BYOLCTL_CONFIG' || fail "byolctl --help does not name the config file"
rc=0; "$BYOLCTL" watch abc 2>/dev/null || rc=$?
[ $rc = 2 ] || fail "byolctl watch abc exited $rc, not 2"
for c in "watch 1" "show 1" "cancel 1" "resume 1" "workers"; do
	rc=0; ctl $c >/dev/null 2>"$T/err" || rc=$?
	[ $rc = 3 ] || fail "byolctl $c without a daemon exited $rc, not 3: $(cat "$T/err")"
	grep -q "$ADDR" "$T/err" || fail "byolctl $c: the message does not name $ADDR: $(cat "$T/err")"
done

start_daemon
start_worker w1 --threads 1
start_worker w2 --threads 2

# ---- workers --json: two workers, their threads and host -------------------
i=0
while :; do
	ctl workers --json >"$T/workers.json"
	n=$("$PY" -c 'import json, sys; print(len(json.load(open(sys.argv[1]))["workers"]))' \
		"$T/workers.json")
	[ "$n" = 2 ] && break
	i=$((i + 1)); [ $i -lt 100 ] || fail "byolctl workers: $n workers after 10 s"
	sleep 0.1
done
json_check "$T/workers.json" "
w = {x['name']: x for x in d['workers']}
assert sorted(w) == ['w1', 'w2'], w
assert w['w1']['threads'] == 1 and w['w2']['threads'] == 2, w
assert all(x['host'] == '$(hostname)' for x in w.values()), w
assert all(x['last_heard_unix_ms'] > 0 for x in w.values()), w
assert d['version'].startswith('byold'), d"
ctl workers | grep -q '^w1 ' || fail "byolctl workers: no line for w1"

# ---- the config file: below the flags, above the defaults ------------------
printf '# byolctl defaults\n[byolctl]\ncoordinator = %s\n' "$ADDR" >"$T/ctl.conf"
BYOLCTL_CONFIG="$T/ctl.conf" timeout 20 "$BYOLCTL" workers >/dev/null ||
	fail "byolctl with coordinator= from \$BYOLCTL_CONFIG failed"
rc=0; BYOLCTL_CONFIG="$T/ctl.conf" timeout 20 "$BYOLCTL" --coordinator 127.0.0.1:1 workers \
	>/dev/null 2>&1 || rc=$?
[ $rc = 3 ] || fail "--coordinator did not win over the config file (exit $rc)"
printf 'coordinator = %s\nsockett = x\n' "$ADDR" >"$T/bad.conf"
rc=0; BYOLCTL_CONFIG="$T/bad.conf" timeout 20 "$BYOLCTL" workers 2>"$T/err" || rc=$?
[ $rc = 2 ] && grep -q "bad.conf:2: unknown key 'sockett'" "$T/err" ||
	fail "a bad config key: exit $rc, $(cat "$T/err")"

# ---- unknown run -------------------------------------------------------------
for c in watch show cancel resume; do
	rc=0; ctl $c 999 >/dev/null 2>"$T/err" || rc=$?
	[ $rc = 1 ] && grep -q "no run 999" "$T/err" ||
		fail "byolctl $c 999: exit $rc, $(cat "$T/err")"
done

# ---- submit --name --watch --json: one object per update, then the end -----
write_experiment "$T/short.ini"
ctl submit "$T/short.ini" --name shortrun --watch --json >"$T/sw.json" 2>"$T/sw.err" ||
	fail "submit --watch of a run that completes exited $?: $(cat "$T/sw.err")"
"$PY" - "$T/sw.json" <<'PY' || fail "submit --watch --json output: $(head -c 2000 "$T/sw.json")"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
head, ups = lines[0], lines[1:]
assert head["experiment_id"] > 0 and len(head["run_ids"]) == 1, head
assert ups and all(u["run_id"] == head["run_ids"][0] for u in ups), ups
steps = [u["step"] for u in ups]
assert steps == sorted(steps), steps
last = ups[-1]
assert last["status"] == "completed" and last["step"] == last["total_steps"] == 8, last
assert last["name"] == "shortrun" and ups[0]["experiment"] == "shortrun", ups[0]
assert 0 < last["knn_accuracy"] <= 1 and last["epochs"] == 2, last
PY
RUN1=$("$PY" -c 'import json, sys; print(json.loads(open(sys.argv[1]).readline())["run_ids"][0])' \
	"$T/sw.json")

# watch of a run that has ended: one answer, plain text, exit 0
ctl watch "$RUN1" >"$T/w1.out" || fail "watch of completed run $RUN1 exited $?"
grep -q "^run $RUN1 (shortrun) completed: 8 steps" "$T/w1.out" || fail "watch: $(cat "$T/w1.out")"

# ---- show --json ----------------------------------------------------------------
ctl show "$RUN1" --json >"$T/show.json" || fail "show --json exited $?"
json_check "$T/show.json" "
r = d['run']
assert r['run_id'] == $RUN1 and r['status'] == 'completed' and r['step'] == 8, r
assert r['experiment'] == 'shortrun' and r['seed'] == 7, r
assert r['started_unix_ms'] >= r['created_unix_ms'] > 0 and r['finished_unix_ms'] >= r['started_unix_ms'], r
assert d['config']['experiment']['name'] == 'shortrun' and d['config']['optim']['epochs'] == 2, d['config']
assert d['config']['data']['shard_size'] == 32, d['config']
assert [c['step'] for c in d['checkpoints']] == [4, 8], d['checkpoints']
assert all(len(c['sha256']) == 64 and c['bytes'] > 0 for c in d['checkpoints']), d['checkpoints']
import os
assert os.path.isfile(d['checkpoints'][-1]['path']), d['checkpoints']
ws = {w['name']: w['shards'] for w in d['workers']}
assert set(ws) <= {'w1', 'w2'} and sum(ws.values()) == 8 * 4, ws
assert 'knn' in [e['kind'] for e in d['evals']] and d['final']['knn_acc'] > 0, d
assert any('completed' in e['message'] for e in d['events']), d['events']"
ctl show "$RUN1" >"$T/show.out" || fail "show exited $?"
grep -q "^checkpoints  step 4" "$T/show.out" && grep -q "optim.epochs = 2" "$T/show.out" ||
	fail "show: $(cat "$T/show.out")"

# ---- a failed run: watch exits 1 ------------------------------------------------
mkdir "$T/trunc"
printf '\000\000\010\003\000\000\002\000\000\000\000\034\000\000\000\034' \
	>"$T/trunc/train-images-idx3-ubyte"
write_experiment "$T/bad.ini" data.dir="$T/trunc"
RUNF=$(ctl submit "$T/bad.ini" | head -n 1)
rc=0; ctl watch "$RUNF" >"$T/wf.out" 2>&1 || rc=$?
[ $rc = 1 ] && grep -q "^run $RUNF (e2e) failed" "$T/wf.out" ||
	fail "watch of a failing run: exit $rc, $(cat "$T/wf.out")"

# ---- cancel: a queued run, then the running one ------------------------------
write_experiment "$T/long.ini" data.train_limit=2048 optim.epochs=20 eval.knn_every_epochs=0 \
	eval.probe=false checkpoint.every_steps=100
LONG=$(ctl submit "$T/long.ini" --name long | head -n 1)
Q1=$(ctl submit "$T/short.ini" --name q1 | head -n 1)
Q2=$(ctl submit "$T/short.ini" --name q2 | head -n 1)
ctl watch "$LONG" >"$T/wl.out" 2>&1 &
WL=$!
ctl watch "$LONG" --json --interval 50 >"$T/wl.json" 2>&1 &
WJ=$!
# the same on a terminal (a pty of 100 columns): a bar redrawn in place
"$PY" - "$BYOLCTL" "$ADDR" "$LONG" "$T/pty.out" <<'PY' &
import fcntl, os, pty, select, struct, sys, termios
ctl, addr, run, out = sys.argv[1:5]
pid, fd = pty.fork()
if pid == 0:
    fcntl.ioctl(1, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    os.execv(ctl, [ctl, "--coordinator", addr, "watch", run])
f = open(out, "wb")
while select.select([fd], [], [], 60)[0]:
    try:
        b = os.read(fd, 4096)
    except OSError:
        break
    if not b:
        break
    f.write(b)
    f.flush()
code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
f.write(b"\nEXIT %d\n" % code)
f.close()
PY
WP=$!
PIDS="$PIDS $WL $WJ $WP"

ctl cancel "$Q1" >"$T/cq.out" || fail "cancel of queued run $Q1 exited $?"
grep -q "^run $Q1 cancelled at step 0/8" "$T/cq.out" || fail "cancel: $(cat "$T/cq.out")"
[ "$(json_get "$(run_json "$Q1")" status)" = cancelled ] || fail "run $Q1 is not cancelled"
rc=0; ctl cancel "$Q1" 2>"$T/err" || rc=$?
[ $rc = 1 ] && grep -q "run $Q1 is cancelled; nothing to cancel" "$T/err" ||
	fail "a second cancel: exit $rc, $(cat "$T/err")"

wait_step "$LONG" 5
# every watcher has shown the run stepping before it is cancelled
wait_for "$T/wl.out" "^run $LONG step "
wait_for "$T/wl.json" '"status":"running","step":[1-9]'
wait_for "$T/pty.out" " ETA "
ctl cancel "$LONG" --json >"$T/cl.json" || fail "cancel of running run $LONG exited $?"
json_check "$T/cl.json" "
import os
assert d['status'] == 'cancelled', d
assert 5 <= d['step'] < d['total_steps'] == 320, d
assert d['checkpoint_step'] == d['step'] and os.path.isfile(d['checkpoint']), d"
AT=$(json_get "$(cat "$T/cl.json")" step)
[ "$(checkpoint_step "$(json_get "$(cat "$T/cl.json")" checkpoint)")" = "$AT" ] ||
	fail "the checkpoint of the cancel is not at step $AT"
rc=0; wait $WL || rc=$?
[ $rc = 1 ] && grep -q "^run $LONG (long) cancelled at step $AT/320" "$T/wl.out" ||
	fail "plain watch of the cancelled run: exit $rc, $(cat "$T/wl.out")"
lines=$(grep -c "^run $LONG step " "$T/wl.out" || true)
[ "$lines" -ge 1 ] || fail "plain watch printed no progress line: $(cat "$T/wl.out")"
rc=0; wait $WJ || rc=$?
[ $rc = 1 ] || fail "watch --json of the cancelled run exited $rc"
"$PY" - "$T/wl.json" "$AT" <<'PY' || fail "watch --json: $(tail -c 1500 "$T/wl.json")"
import json, sys
ups = [json.loads(l) for l in open(sys.argv[1])]
assert len(ups) >= 2, ups
assert ups[-1]["status"] == "cancelled" and ups[-1]["step"] == int(sys.argv[2]), ups[-1]
run = [u for u in ups if u["status"] == "running" and u["step"] > 0]
assert run and all(u["loss"] is not None and u["img_per_s"] > 0 for u in run), run
assert all(u["eta_s"] is None or u["eta_s"] >= 0 for u in ups), ups
PY
wait $WP || true
"$PY" - "$T/pty.out" "$LONG" <<'PY' || fail "watch on a terminal: $(tail -c 600 "$T/pty.out")"
import re, sys
data, run = open(sys.argv[1], "rb").read(), sys.argv[2].encode()
assert data.rstrip().endswith(b"EXIT 1"), data[-200:]
assert data.count(b"\r\x1b[K") >= 2, data[:400]
bars = re.findall(rb"\r\x1b\[Krun " + run + rb" long \[[#-]{10,30}\] \d+/320 ETA ", data)
assert bars, data[:400]
assert all(len(l) < 100 for l in data.split(b"\r\x1b[K")[1:-1]), "a line wider than the terminal"
assert b"run " + run + b" (long) cancelled" in data, data[-300:]
PY

# the next queued run runs to its end
ctl watch "$Q2" >"$T/q2.out" || fail "run $Q2 after the cancel: watch exited $?: $(cat "$T/q2.out")"
rc=0; ctl cancel "$Q2" 2>"$T/err" || rc=$?
[ $rc = 1 ] && grep -q "run $Q2 is completed; nothing to cancel" "$T/err" ||
	fail "cancel of a completed run: exit $rc, $(cat "$T/err")"
rc=0; ctl resume "$Q2" 2>"$T/err" || rc=$?
[ $rc = 1 ] && grep -q "run $Q2 is completed; nothing to resume" "$T/err" ||
	fail "resume of a completed run: exit $rc, $(cat "$T/err")"

# ---- resume the cancelled run from its checkpoint, to the end ----------------
ctl resume "$LONG" --watch >"$T/res.out" 2>&1 || fail "resume --watch exited $?: $(cat "$T/res.out")"
grep -q "continues from step $AT " "$T/res.out" && grep -q "^run $LONG (long) completed: 320 steps" \
	"$T/res.out" || fail "resume: $(cat "$T/res.out")"
grep -q "run $LONG (long): .* from step $AT " "$T/byold.log" || fail "run $LONG did not load step $AT"
metrics_check "$LONG" 320
ctl show "$LONG" --json >"$T/show2.json"
json_check "$T/show2.json" "
assert d['run']['status'] == 'completed' and d['run']['step'] == 320, d['run']
assert d['checkpoints'][-1]['step'] == 320, d['checkpoints']"

# ---- byold goes away during a watch: reconnect attempts, then exit 3 --------
LONG2=$(ctl submit "$T/long.ini" --name long2 | head -n 1)
ctl watch "$LONG2" --reconnect 2 >"$T/wk.out" 2>"$T/wk.err" &
WK=$!
PIDS="$PIDS $WK"
wait_step "$LONG2" 2
kill_daemon
rc=0; wait $WK || rc=$?
[ $rc = 3 ] && grep -q "trying to reconnect for 2 s" "$T/wk.err" ||
	fail "watch after byold died: exit $rc, $(cat "$T/wk.err")"
echo "ctl_commands: ok (cancelled run $LONG at step $AT, resumed to the end)"
