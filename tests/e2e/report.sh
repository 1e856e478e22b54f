#!/bin/sh
# byolctl report against a real byold and two workers: a tiny sweep of two
# named variants (the base, and one without BN in the predictor) x two seeds,
# 256 images, one epoch, trained to the end; then `byolctl report` writes
# report.md, probe.svg and collapse.svg. Checked: the runs' names, the
# Markdown's variant rows (n = 2 each) whose figures are the ones computed here
# from `byolctl history --json` (mean, sample std, min-max, collapse, steps),
# one row per run, both SVGs parse as XML with a group / a line per variant,
# --json; an experiment without variants grouped by its swept key; the
# failure modes (unknown experiment, usage, unreachable byold).
E2E_LIMIT=${E2E_LIMIT:-60}
. "$(dirname "$0")/cluster.inc"

write_experiment "$T/exp.ini" experiment.name=e2e-report data.train_limit=256 optim.epochs=1 \
	optim.warmup_epochs=0 eval.knn_every_epochs=0 eval.probe_epochs=2 \
	"sweep.experiment.variant=bn, nopred" "sweep.experiment.seed=1, 2"
cat >>"$T/exp.ini" <<'INI'

[variant nopred]
model.predictor_norm = none
INI
start_daemon
start_worker w1 --threads 1
start_worker w2 --threads 1
ctl submit "$T/exp.ini" --wait >"$T/submit.out" 2>"$T/submit.err" ||
	fail "submit --wait exited $?: $(cat "$T/submit.err")"
[ "$(wc -l <"$T/submit.out")" = 4 ] || fail "expected 4 run ids: $(cat "$T/submit.out")"

ctl history --where 'experiment = e2e-report' --order id --json >"$T/history.json" ||
	fail "history --json failed"
ctl report e2e-report -o "$T/out/rep" >"$T/report.out" 2>"$T/report.err" ||
	fail "report exited $?: $(cat "$T/report.err")"
grep -q "report.md: 4 runs of e2e-report in 2 groups by experiment.variant" "$T/report.out" ||
	fail "report's summary: $(cat "$T/report.out")"

"$PY" - "$T/history.json" "$T/out/rep" <<'PY' || fail "report.md: $(cat "$T/out/rep/report.md")"
import json, math, re, sys
runs = json.load(open(sys.argv[1]))
md = open(sys.argv[2] + "/report.md").read()
assert [r["name"] for r in runs] == ["e2e-report/variant=%s,seed=%d" % (v, s)
                                     for v in ("bn", "nopred") for s in (1, 2)], [r["name"] for r in runs]
assert all(r["status"] == "completed" for r in runs), [r["status"] for r in runs]

def table(after):
    """The rows (lists of cells) of the first table whose header starts with `after`."""
    lines = md.splitlines()
    i = next(k for k, l in enumerate(lines) if l.startswith(after))
    rows = []
    for l in lines[i + 2:]:
        if not l.startswith("|"):
            break
        rows.append([c.strip() for c in l.strip("|").split(" | ")])
    return lines[i], rows

def acc(v):
    n, m = len(v), sum(v) / len(v)
    sd = math.sqrt(sum((x - m) ** 2 for x in v) / (n - 1))
    return "%.2f ± %.2f (%.2f–%.2f)" % (100 * m, 100 * sd, 100 * min(v), 100 * max(v))

head, rows = table("| variant | runs |")
assert head.split(" | ")[2:4] == ["probe acc (%)", "kNN acc (%)"], head
assert [r[0] for r in rows] == ["bn", "nopred"], rows
for row in rows:
    mine = [r for r in runs if r["config"]["experiment"]["variant"] == row[0]]
    assert len(mine) == 2 and row[1] == "2", (row, len(mine))
    assert row[2] == acc([r["final"]["probe_acc"] for r in mine]), (row[2], mine)
    assert row[3] == acc([r["final"]["knn_acc"] for r in mine]), (row[3], mine)
    assert row[4] == "%.3f" % (sum(r["final"]["collapse"] for r in mine) / 2), row
    assert row[5] == "%.0f" % mine[0]["final"]["steps"], row
# the variants differ where they should, and only there
nb = [r for r in runs if r["config"]["experiment"]["variant"] == "nopred"]
assert all(r["config"]["model"]["predictor_norm"] == "none" for r in nb), nb
assert all(r["config"]["model"]["predictor_norm"] == "bn" for r in runs if r not in nb)

head, per_run = table("| run | name |")
assert [int(r[0]) for r in per_run] == [r["run_id"] for r in runs], per_run
for row, r in zip(per_run, runs):
    assert row[1] == r["name"] and row[2] == r["config"]["experiment"]["variant"], row
    assert row[3] == str(r["seed"]) and row[4] == "completed", row
    assert row[5] == "%.2f" % (100 * r["final"]["probe_acc"]), (row, r["final"])
assert "](probe.svg)" in md and "](collapse.svg)" in md, md
PY

"$PY" - "$T/out/rep" <<'PY' || fail "the SVGs"
import sys, xml.etree.ElementTree as ET
ns = "{http://www.w3.org/2000/svg}"
p = ET.parse(sys.argv[1] + "/probe.svg").getroot()
groups = [g for g in p.iter(ns + "g") if g.get("class") == "group"]
assert [g.get("data-label") for g in groups] == ["bn", "nopred"], groups
for g in groups:
    assert len(g.findall(ns + "circle")) == 2, ET.tostring(g)
    assert g.find(ns + "line") is not None and g.find(ns + "path") is not None, ET.tostring(g)
c = ET.parse(sys.argv[1] + "/collapse.svg").getroot()
series = [g for g in c.iter(ns + "g") if g.get("class") == "series"]
assert [g.get("data-label") for g in series] == ["bn", "nopred"], series
for g in series:
    assert g.find(ns + "polyline") is not None, ET.tostring(g)
PY
[ ! -e "$T/out/rep/report.md.tmp" ] && [ ! -e "$T/out/rep/probe.svg.tmp" ] || fail "temporary files left"

# the variant is a config key like any other for history
ctl history --where 'experiment.variant = nopred' --json >"$T/h.json" || fail "history by variant"
[ "$("$PY" -c 'import json,sys; print(sorted(r["name"] for r in json.load(open(sys.argv[1]))))' "$T/h.json")" = \
	"['e2e-report/variant=nopred,seed=1', 'e2e-report/variant=nopred,seed=2']" ] ||
	fail "history --where 'experiment.variant = nopred': $(cat "$T/h.json")"

# --json: the same groups
ctl --json report e2e-report -o "$T/rep2" >"$T/report.json" || fail "report --json failed"
"$PY" - "$T/report.json" "$T/history.json" <<'PY' || fail "report --json: $(cat "$T/report.json")"
import json, sys
r = json.load(open(sys.argv[1]))
runs = json.load(open(sys.argv[2]))
assert r["group_by"] == "experiment.variant" and r["probe_svg"] and r["collapse_svg"], r
assert [g["label"] for g in r["groups"]] == ["bn", "nopred"], r
for g in r["groups"]:
    v = [x["final"]["knn_acc"] for x in runs if x["config"]["experiment"]["variant"] == g["label"]]
    assert g["runs"] == g["completed"] == g["knn_acc"]["n"] == 2, g
    assert abs(g["knn_acc"]["mean"] - sum(v) / 2) < 1e-12, (g, v)
PY

# without variants: grouped by the swept keys other than the seed
write_experiment "$T/plain.ini" experiment.name=e2e-plain data.train_limit=256 optim.epochs=1 \
	optim.warmup_epochs=0 eval.knn_every_epochs=0 eval.probe=false \
	"sweep.model.predictor_norm=bn, none"
ctl submit "$T/plain.ini" --wait >/dev/null 2>"$T/plain.err" || fail "submit plain.ini: $(cat "$T/plain.err")"
ctl report e2e-plain -o "$T/plain" >"$T/plain.out" || fail "report e2e-plain failed"
grep -q "^| model.predictor_norm | runs |" "$T/plain/report.md" &&
	grep -q "^| predictor_norm=bn | 1 | - | " "$T/plain/report.md" &&
	grep -q "^| predictor_norm=none | 1 | - | " "$T/plain/report.md" ||
	fail "report grouped by the swept key: $(cat "$T/plain/report.md")"
# no probe measured: no probe.svg, said so
[ ! -e "$T/plain/probe.svg" ] && [ -s "$T/plain/collapse.svg" ] &&
	grep -q "probe.svg not written" "$T/plain.out" || fail "report without a probe: $(cat "$T/plain.out")"

# failure modes
rc=0; ctl report no-such-experiment -o "$T/none" 2>"$T/none.err" || rc=$?
[ $rc = 1 ] && grep -q "no experiment named 'no-such-experiment'" "$T/none.err" && [ ! -e "$T/none" ] ||
	fail "report of an unknown experiment: exit $rc, $(cat "$T/none.err")"
rc=0; "$BYOLCTL" --coordinator 127.0.0.1:1 report e2e-report 2>"$T/u1.err" || rc=$?
[ $rc = 2 ] && grep -q -- "-o DIR is required" "$T/u1.err" || fail "report without -o: exit $rc"
rc=0; "$BYOLCTL" --coordinator 127.0.0.1:1 report e2e-report -o "$T/x" 2>"$T/u2.err" || rc=$?
[ $rc = 3 ] && grep -q "127.0.0.1:1" "$T/u2.err" || fail "unreachable byold: exit $rc, $(cat "$T/u2.err")"
: >"$T/file"
rc=0; ctl report e2e-report -o "$T/file" 2>"$T/nd.err" || rc=$?
[ $rc = 1 ] && grep -q "not a directory" "$T/nd.err" || fail "-o a file: exit $rc, $(cat "$T/nd.err")"
echo "ok: byolctl report (runs $(tr '\n' ' ' <"$T/submit.out"))"
