#!/bin/sh
# The README's tutorial, run as written: the commands between the
# `<!-- tutorial:begin -->` and `<!-- tutorial:end -->` markers go to sh -eu in a
# fresh directory, with byolctl on the PATH and $BYOLD_SOCKET naming a real
# daemon with two workers. Then the files it made and what it printed are
# checked: two completed runs in the history, a plot with two lines, an
# encoder that loads.
. "$(dirname "$0")/cluster.inc"

README="$E2E_DIR/../../README.md"
[ -f "$README" ] || fail "no README at $README"
awk '/<!-- tutorial:begin -->/ { on = 1; next }
     /<!-- tutorial:end -->/ { on = 0 }
     on && !/^```/ { print }' "$README" >"$T/tutorial.sh"
grep -q "byolctl submit" "$T/tutorial.sh" || fail "no tutorial commands found in $README"

start_daemon
start_worker w1 --threads 1
start_worker w2 --threads 1

mkdir "$T/tut"
BINDIR=$(cd "$BIN" && pwd)
(
	cd "$T/tut"
	PATH="$BINDIR:$PATH" BYOLD_SOCKET="$T/state/byold.sock" sh -eu "$T/tutorial.sh"
) >"$T/tutorial.out" 2>"$T/tutorial.err" ||
	fail "the tutorial stopped (exit $?): $(tail -n 5 "$T/tutorial.err")"

# two runs, both completed, ordered by probe accuracy
rows=$(grep -c ' completed ' "$T/tutorial.out" || true)
[ "$rows" -ge 2 ] || fail "history printed $rows completed rows: $(cat "$T/tutorial.out")"
[ "$(ctl history --where 'experiment ~ tiny*' --json | "$PY" -c 'import json,sys; print(len(json.load(sys.stdin)))')" = 2 ] ||
	fail "history --json does not hold the tutorial's two runs"
# compare names the one key that differs
grep -q "predictor_norm" "$T/tutorial.out" || fail "compare does not show model.predictor_norm"
# the plot: valid SVG with a line per run
"$PY" - "$T/tut/loss.svg" <<'PY' || fail "loss.svg is not a plot of two runs"
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
lines = [e for e in root.iter() if e.tag.endswith('polyline') or e.tag.endswith('path')]
assert len(lines) >= 2, len(lines)
PY
# the encoder: a safetensors file with encoder tensors only
"$PY" - "$T/tut/encoder.safetensors" <<'PY' || fail "encoder.safetensors is not an encoder"
import json, struct, sys
b = open(sys.argv[1], 'rb').read()
n = struct.unpack('<Q', b[:8])[0]
h = json.loads(b[8:8 + n])
names = [k for k in h if k != '__metadata__']
assert names, 'no tensors'
assert not any(k.startswith('target.') or 'predictor' in k for k in names), names
PY
echo "ok: the README tutorial runs as written"
