#!/bin/sh
# byolctl history and list against a real byold and worker: two small runs of
# two experiments with different configs (predictor norm, learning rate), then
# queries on config keys, final metrics, status, experiment and time, in the
# human table and as --json (parsed with python3's json module), order and
# limit, and the failure modes: a bad --where (exit 1, the daemon's message
# pointing at the token, a caret under it), an injection attempt that changes
# nothing, bad usage (exit 2) and an unreachable daemon (exit 3).
. "$(dirname "$0")/cluster.inc"

write_experiment "$T/a.ini" experiment.name=e2e-bn model.predictor_norm=bn
write_experiment "$T/b.ini" experiment.name=e2e-none model.predictor_norm=none optim.lr=0.5
start_daemon
start_worker w1 --threads 2
START=$(date +%s)

ctl submit "$T/a.ini" --wait >"$T/a.out" 2>"$T/a.err" || fail "submit a.ini: $(cat "$T/a.err")"
ctl submit "$T/b.ini" --wait >"$T/b.out" 2>"$T/b.err" || fail "submit b.ini: $(cat "$T/b.err")"
A=$(cat "$T/a.out")
B=$(cat "$T/b.out")

# check JSON_FILE PYTHON: runs python on the parsed array `runs`
check() {
	"$PY" - "$1" "$A" "$B" <<PY || fail "$3: $(head -c 600 "$1")"
import json, sys
runs = json.load(open(sys.argv[1]))
A, B = int(sys.argv[2]), int(sys.argv[3])
ids = [r["run_id"] for r in runs]
$2
PY
}

# a config key (enum), --json: one run, its config and final metrics as objects
ctl history --where 'model.predictor_norm = none' --json >"$T/h1.json" || fail "history --json failed"
check "$T/h1.json" '
assert ids == [B], ids
r = runs[0]
assert r["experiment"] == "e2e-none" and r["status"] == "completed", r
assert r["config"]["model"]["predictor_norm"] == "none", r["config"]
assert r["config"]["optim"]["lr"] == 0.5, r["config"]["optim"]
assert isinstance(r["final"]["probe_acc"], float) and 0 < r["final"]["probe_acc"] <= 1, r["final"]
assert r["final"]["steps"] == 8 and r["step"] == 8 and r["total_steps"] == 8, r
assert r["seed"] == 7 and r["finished_unix_ms"] >= r["started_unix_ms"] >= r["created_unix_ms"] > 0, r
assert r["finished"].endswith("Z") and r["probe_accuracy"] == r["final"]["probe_acc"], r
' "config key query"

# a numeric config key, two --where terms, the global --json
ctl --json history --where 'optim.lr < 0.6' --where 'status = completed' >"$T/h2.json" ||
	fail "history with two terms failed"
check "$T/h2.json" 'assert ids == [B], ids' "numeric config key"

# a final metric threshold every completed run passes, ordered by it
ctl history --where 'probe_acc >= 0' --order -probe_acc --json >"$T/h3.json" || fail "metric query failed"
check "$T/h3.json" '
assert sorted(ids) == sorted([A, B]), ids
p = [r["final"]["probe_acc"] for r in runs]
assert p == sorted(p, reverse=True), p
' "metric threshold and order"
ctl history --where 'probe_acc > 1' --json >"$T/h4.json" || fail "empty metric query failed"
check "$T/h4.json" 'assert runs == [], runs' "metric over 1"

# time: finished since the test began (unix seconds), and today's date
ctl history --where "finished >= $START" --where "created >= $(date -u +%Y-%m-%d -d @"$START")" \
	--json >"$T/h5.json" || fail "time query failed"
check "$T/h5.json" 'assert sorted(ids) == sorted([A, B]), ids' "finished since the start"
ctl history --where "finished < $START" --json >"$T/h6.json" || fail "time query failed"
check "$T/h6.json" 'assert runs == [], runs' "finished before the start"

# the human table: a header, then one line per run, newest first; limit
ctl history >"$T/table.txt" || fail "history failed"
head -n1 "$T/table.txt" | grep -q "^ID .*EXPERIMENT .*NAME .*STATUS .*STEP .*PROBE .*KNN .*COLLAPSE .*FINISHED" ||
	fail "no table header: $(cat "$T/table.txt")"
[ "$(sed -n 2p "$T/table.txt" | awk '{print $1, $2, $4, $5}')" = "$B e2e-none completed 8/8" ] ||
	fail "first row is not run $B: $(cat "$T/table.txt")"
[ "$(sed -n 3p "$T/table.txt" | awk '{print $1, $2}')" = "$A e2e-bn" ] ||
	fail "second row is not run $A: $(cat "$T/table.txt")"
[ "$(ctl history --limit 1 | wc -l)" = 2 ] || fail "--limit 1 printed $(ctl history --limit 1)"

# list: by status and by experiment; --filter kept for older scripts
ctl list --status completed >"$T/list.txt" || fail "list --status failed"
grep -q "^$A[[:space:]]" "$T/list.txt" && grep -q "^$B[[:space:]]" "$T/list.txt" ||
	fail "list --status completed: $(cat "$T/list.txt")"
ctl list --experiment e2e-bn --json >"$T/l1.json" || fail "list --experiment failed"
check "$T/l1.json" 'assert ids == [A], ids' "list --experiment"
ctl list --filter 'config.model.predictor_norm = none' --json >"$T/l2.json" || fail "list --filter failed"
check "$T/l2.json" 'assert ids == [B], ids' "list --filter"
rc=0; ctl list --status queued >"$T/none.out" 2>"$T/none.err" || rc=$?
[ $rc = 0 ] && [ ! -s "$T/none.out" ] && grep -q "no runs match" "$T/none.err" ||
	fail "list --status queued: exit $rc, $(cat "$T/none.out" "$T/none.err")"

# a bad --where: exit 1, the message names the term and column, a caret under it
rc=0; ctl history --where 'status = completed' --where 'probe_acc >> 0.8' 2>"$T/bad.err" || rc=$?
[ $rc = 1 ] || fail "bad --where exited $rc, expected 1"
grep -q "where 2: 'probe_acc >> 0.8': unknown operator '>>'.*(column 11)" "$T/bad.err" ||
	fail "bad --where message: $(cat "$T/bad.err")"
grep -qx "  probe_acc >> 0.8" "$T/bad.err" && grep -qx "            ^" "$T/bad.err" ||
	fail "no caret under the operator: $(cat "$T/bad.err")"
rc=0; ctl history --where 'model.predictr_norm = bn' 2>"$T/key.err" || rc=$?
[ $rc = 1 ] && grep -q "unknown key 'model.predictr_norm', did you mean model.predictor_norm?" \
	"$T/key.err" || fail "unknown key: exit $rc, $(cat "$T/key.err")"
rc=0; ctl history --order -probe_ac 2>"$T/order.err" || rc=$?
[ $rc = 1 ] && grep -q "order: '-probe_ac': unknown key 'probe_ac', did you mean probe_acc?" \
	"$T/order.err" || fail "bad --order: exit $rc, $(cat "$T/order.err")"
rc=0; ctl list --status done 2>"$T/status.err" || rc=$?
[ $rc = 1 ] && grep -q "unknown run status 'done'" "$T/status.err" ||
	fail "list --status done: exit $rc, $(cat "$T/status.err")"

# injection attempts: refused, or one harmless text value; the store is intact
rc=0; ctl history --where "name = x'; DROP TABLE runs; --" 2>"$T/inj.err" || rc=$?
[ $rc = 1 ] && grep -q "found 'DROP'" "$T/inj.err" || fail "injection: exit $rc, $(cat "$T/inj.err")"
ctl history --where "name = \"x'; DROP TABLE runs; --\"" --json >"$T/inj.json" ||
	fail "quoted injection failed"
check "$T/inj.json" 'assert runs == [], runs' "quoted injection"
ctl history --where "experiment = \"e2e-bn' OR '1'='1\"" --json >"$T/inj2.json" ||
	fail "quoted injection failed"
check "$T/inj2.json" 'assert runs == [], runs' "quoted injection 2"
[ "$(db 'SELECT count(*) FROM runs;')" = 2 ] || fail "the runs table changed"
ctl history --json >"$T/all.json" || fail "history after the injections failed"
check "$T/all.json" 'assert sorted(ids) == sorted([A, B]), ids' "all runs after the injections"

# usage errors: exit 2, before any connection
rc=0; "$BYOLCTL" --coordinator 127.0.0.1:1 history --limit abc 2>"$T/u1.err" || rc=$?
[ $rc = 2 ] && grep -q "limit 'abc'" "$T/u1.err" || fail "--limit abc: exit $rc, $(cat "$T/u1.err")"
rc=0; "$BYOLCTL" --coordinator 127.0.0.1:1 history --where 2>"$T/u2.err" || rc=$?
[ $rc = 2 ] && grep -q "needs a value" "$T/u2.err" || fail "--where alone: exit $rc, $(cat "$T/u2.err")"
rc=0; "$BYOLCTL" --coordinator 127.0.0.1:1 list --bogus 2>"$T/u3.err" || rc=$?
[ $rc = 2 ] || fail "list --bogus: exit $rc"

# an unreachable daemon: exit 3, naming the address
rc=0; "$BYOLCTL" --coordinator 127.0.0.1:1 history 2>"$T/unreach.err" || rc=$?
[ $rc = 3 ] && grep -q "127.0.0.1:1" "$T/unreach.err" ||
	fail "unreachable daemon: exit $rc, $(cat "$T/unreach.err")"
rc=0; "$BYOLCTL" --socket "$T/nowhere.sock" list 2>"$T/unreach2.err" || rc=$?
[ $rc = 3 ] || fail "unreachable socket: exit $rc, $(cat "$T/unreach2.err")"

echo "ok: history and list (runs $A, $B)"
