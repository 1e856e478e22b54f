#!/bin/sh
# byolctl export, plot and compare against a real byold and worker, and the
# bash completion:
#   - a sweep of two runs (model.predictor_norm = bn, none) trains to the end;
#   - export --what all is byte for byte the checkpoint in the state directory
#     (the latest, and --step 4), also in 4 KiB chunks;
#   - export --what encoder is safetensors holding only encoder.* tensors, each
#     the same bytes as online.<name> / bn.<name> of the checkpoint, and byold
#     leaves no temp file behind, also when the client hangs up at once;
#   - a tampered stream (wrong offset, wrong sha256, short, a chunk past the
#     end, another file's size, an Error mid-stream, bytes that are not
#     safetensors) from a scripted daemon: exit 1, a message naming the fault,
#     no file and no FILE.tmp, an existing FILE untouched; a daemon that hangs
#     up mid-stream: exit 3, the same;
#   - plot of the two runs is XML with two series, two lines and a legend;
#   - compare shows exactly the one config key that differs; --json parses;
#   - unknown runs exit 1, bad usage 2;
#   - the bash completion offers the commands, options and run ids.
E2E_LIMIT=${E2E_LIMIT:-90}
. "$(dirname "$0")/cluster.inc"

write_experiment "$T/exp.ini" "sweep.model.predictor_norm=bn, none" eval.knn_every_epochs=0
start_daemon
start_worker w1 --threads 2

ctl submit "$T/exp.ini" --wait >"$T/submit.out" 2>"$T/submit.err" ||
	fail "submit --wait exited $?: $(cat "$T/submit.err")"
[ "$(wc -l <"$T/submit.out")" -eq 2 ] || fail "expected two run ids: $(cat "$T/submit.out")"
R1=$(sed -n 1p "$T/submit.out")
R2=$(sed -n 2p "$T/submit.out")

# ---- export --what all: the stored bytes --------------------------------------
CK=$(latest_checkpoint "$R1")
ctl export "$R1" --what all -o "$T/all.safetensors" >"$T/export.out" 2>"$T/export.err" ||
	fail "export --what all exited $?: $(cat "$T/export.err")"
cmp "$CK" "$T/all.safetensors" || fail "export --what all differs from $CK"
grep -q "step 8" "$T/export.out" || fail "export did not report step 8: $(cat "$T/export.out")"
[ ! -e "$T/all.safetensors.tmp" ] || fail "export left all.safetensors.tmp"
ctl export "$R1" --what all --chunk-bytes 4096 --json -o "$T/all4k.safetensors" \
	>"$T/export4k.json" || fail "export in 4 KiB chunks failed"
cmp "$CK" "$T/all4k.safetensors" || fail "export in 4 KiB chunks differs from $CK"
sha=$(sha256sum "$CK" | cut -d' ' -f1)
"$PY" - "$T/export4k.json" "$sha" "$(wc -c <"$CK")" <<'PY' || fail "export --json: $(cat "$T/export4k.json")"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["sha256"] == sys.argv[2] and r["bytes"] == int(sys.argv[3]), r
assert r["what"] == "all" and r["step"] == 8 and r["tensors"] > 0, r
PY
ctl export "$R1" --what all --step 4 -o "$T/step4.safetensors" >/dev/null ||
	fail "export --step 4 failed"
cmp "$T/state/runs/$R1/step-4.safetensors" "$T/step4.safetensors" ||
	fail "export --step 4 differs from the stored step-4 checkpoint"
rc=0; ctl export "$R1" --what all --step 3 -o "$T/step3.safetensors" 2>"$T/step3.err" || rc=$?
[ $rc = 1 ] && grep -q "no checkpoint at step 3" "$T/step3.err" && [ ! -e "$T/step3.safetensors" ] ||
	fail "export --step 3: exit $rc, $(cat "$T/step3.err")"

# ---- export --what encoder ---------------------------------------------------
ctl export "$R1" -o "$T/enc.safetensors" >/dev/null 2>"$T/enc.err" ||
	fail "export (encoder) exited $?: $(cat "$T/enc.err")"
"$PY" - "$T/enc.safetensors" "$CK" <<'PY' || fail "the encoder file is wrong"
import json, struct, sys

def load(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    meta = h.pop("__metadata__", {})
    data = b[8 + n:]
    assert max(t["data_offsets"][1] for t in h.values()) == len(data), path
    return meta, {k: data[t["data_offsets"][0]:t["data_offsets"][1]] for k, t in h.items()}, h

meta, enc, hdr = load(sys.argv[1])
_, ck, ckh = load(sys.argv[2])
assert meta.get("format") == "byold-encoder-1" and meta.get("step") == "8", meta
assert enc and all(k.startswith("encoder.") for k in enc), sorted(enc)
assert all(t["dtype"] == "F32" for t in hdr.values())
for k, v in enc.items():
    src = "online." + k if "online." + k in ck else "bn." + k
    assert ck.get(src) == v, "%s is not the bytes of %s" % (k, src)
    assert hdr[k]["shape"] == ckh[src]["shape"], k
# every online encoder tensor is there
missing = [k for k in ck if k.startswith("online.encoder.") and k[7:] not in enc]
assert not missing, missing
print("encoder: %d tensors" % len(enc))
PY
# a client that hangs up right after asking: byold carries on, no temp file left
E2E_DIR=$E2E_DIR "$PY" - "$PORT" "$R1" <<'PY' || fail "the hang-up client failed"
import os, socket, sys
sys.path.insert(0, os.environ["E2E_DIR"])
from fakepeer import Peer, f_bytes, f_varint, frame
for i in range(3):
    p = Peer("127.0.0.1:" + sys.argv[1], 10)
    ok, why = p.handshake(None, role=2, name="hangup")
    assert ok, why
    p.send(frame(46, f_varint(1, int(sys.argv[2])) + f_bytes(2, "encoder") + f_varint(4, 4096)))
    p.s.close()
PY
ctl status "$R1" >/dev/null || fail "byold stopped answering after the hang-ups"
i=0
while [ -n "$(ls -A "$T/state/export" 2>/dev/null)" ]; do
	i=$((i + 1))
	[ $i -lt 100 ] || fail "export temp files left: $(ls "$T/state/export")"
	sleep 0.1
done

# ---- a tampered stream is refused ------------------------------------------------
cat >"$T/fakeexport.py" <<'PY'
# A scripted byold that answers one ExportRequest per connection with a stream
# broken in the way named by the scenario list, one scenario per connection.
import hashlib, json, os, socket, struct, sys
sys.path.insert(0, os.environ["E2E_DIR"])
from fakepeer import f_bytes, f_varint, frame, parse

def safetensors():
    hdr = json.dumps({"__metadata__": {"format": "byold-checkpoint-1"},
                      "w": {"dtype": "F32", "shape": [300], "data_offsets": [0, 1200]}}).encode()
    hdr += b" " * (-len(hdr) % 8)
    return struct.pack("<Q", len(hdr)) + hdr + bytes(range(256)) * 4 + bytes(176)

def chunk(off, data, total, last=False, sha=b"", step=8):
    b = f_varint(1, off) + f_bytes(2, data) + f_varint(3, total) + f_varint(6, step)
    if last:
        b += f_varint(4, 1) + f_bytes(5, sha)
    return frame(47, b)

def stream(kind, body):
    n, sha = len(body), hashlib.sha256(body).digest()
    a, b = body[:500], body[500:]
    if kind == "offset":
        return [chunk(0, a, n), chunk(600, b, n, True, sha)]
    if kind == "hash":
        return [chunk(0, a, n), chunk(500, b, n, True, bytes(32))]
    if kind == "short":
        return [chunk(0, a, n), chunk(500, b[:-8], n, True, sha)]
    if kind == "past":
        return [chunk(0, a, n), chunk(500, b + b"xxxx", n, True, sha)]
    if kind == "total":
        return [chunk(0, a, n), chunk(500, b, n + 1, True, sha)]
    if kind == "error":
        return [chunk(0, a, n), frame(4, f_varint(1, 5) + f_bytes(2, "disk on fire"))]
    if kind in ("eof", "stall"):
        return [chunk(0, a, n)]
    if kind == "junk":
        junk = b"not safetensors at all" * 10
        return [chunk(0, junk, len(junk), True, hashlib.sha256(junk).digest())]
    raise SystemExit("unknown scenario " + kind)

srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(8)
open(sys.argv[1], "w").write(str(srv.getsockname()[1]))
body = safetensors()
for kind in sys.argv[2:]:
    c, _ = srv.accept()
    c.sendall(frame(1, f_bytes(1, os.urandom(32)) + f_bytes(2, "fake") + f_varint(4, 1)))
    buf = b""
    def msg():
        global buf
        while len(buf) < 4 or len(buf) < 4 + struct.unpack(">I", buf[:4])[0]:
            got = c.recv(65536)
            if not got:
                raise SystemExit("client closed early in " + kind)
            buf += got
        n = struct.unpack(">I", buf[:4])[0]
        env, buf = parse(buf[4:4 + n]), buf[4 + n:]
        return env
    assert 2 in msg()                       # ClientAuth
    c.sendall(frame(3, f_varint(1, 1)))     # AuthResult ok
    assert 46 in msg(), kind                # ExportRequest
    for f in stream(kind, body):
        c.sendall(f)
    if kind != "eof":
        try:
            c.settimeout(10)
            while c.recv(65536):
                pass
        except OSError:
            pass
    c.close()
PY
E2E_DIR=$E2E_DIR "$PY" "$T/fakeexport.py" "$T/fake.port" offset hash short past total error eof junk stall \
	>"$T/fake.log" 2>&1 &
FAKE=$!
PIDS="$PIDS $FAKE"
wait_file "$T/fake.port" "the scripted daemon did not start"
FAKEADDR="127.0.0.1:$(cat "$T/fake.port")"
echo "keep me" >"$T/kept.safetensors"
check_tampered() {
	kind=$1; want=$2; code=${3:-1}
	rc=0
	timeout 30 "$BYOLCTL" --coordinator "$FAKEADDR" export 1 --what all \
		-o "$T/kept.safetensors" >"$T/t.out" 2>"$T/t.err" || rc=$?
	[ $rc = "$code" ] ||
		fail "tampered stream '$kind': exit $rc, expected $code: $(cat "$T/t.err")"
	grep -q "$want" "$T/t.err" || fail "tampered stream '$kind': '$want' not in: $(cat "$T/t.err")"
	[ "$(cat "$T/kept.safetensors")" = "keep me" ] || fail "'$kind' overwrote the existing file"
	[ ! -e "$T/kept.safetensors.tmp" ] || fail "'$kind' left kept.safetensors.tmp"
}
check_tampered offset "starts at byte 600, expected 500"
check_tampered hash "sha256 mismatch"
check_tampered short "the stream ended at byte"
check_tampered past "runs past the end"
check_tampered total "describes another file"
check_tampered error "disk on fire"
check_tampered eof "lost the connection" 3
check_tampered junk "not valid safetensors"
# Ctrl-C in the middle of a download: the temp file goes with it
timeout 30 "$BYOLCTL" --coordinator "$FAKEADDR" export 1 --what all \
	-o "$T/kept.safetensors" >"$T/t.out" 2>"$T/t.err" &
EXP=$!
i=0
until [ -e "$T/kept.safetensors.tmp" ]; do
	i=$((i + 1)); [ $i -lt 100 ] || fail "the stalled export made no temp file"; sleep 0.1
done
kill -INT "$EXP"
rc=0; wait "$EXP" || rc=$?
[ $rc = 130 ] || fail "export after SIGINT: exit $rc, expected 130 (killed by SIGINT)"
[ ! -e "$T/kept.safetensors.tmp" ] || fail "SIGINT left kept.safetensors.tmp"
[ "$(cat "$T/kept.safetensors")" = "keep me" ] || fail "SIGINT changed the existing file"
wait "$FAKE" || fail "the scripted daemon failed: $(cat "$T/fake.log")"

# ---- plot ------------------------------------------------------------------------
ctl plot "$R1" "$R2" -o "$T/loss.svg" >"$T/plot.out" 2>"$T/plot.err" ||
	fail "plot exited $?: $(cat "$T/plot.err")"
"$PY" - "$T/loss.svg" "$R1" "$R2" <<'PY' || fail "loss.svg is not a chart of two runs"
import sys, xml.etree.ElementTree as ET
NS = "{http://www.w3.org/2000/svg}"
root = ET.parse(sys.argv[1]).getroot()
assert root.tag == NS + "svg", root.tag
series = [g for g in root.iter(NS + "g") if g.get("class") == "series"]
assert len(series) == 2, len(series)
for g in series:
    lines = g.findall(NS + "polyline")
    assert len(lines) == 1, len(lines)
    assert len(lines[0].get("points").split()) == 8, lines[0].get("points")
assert series[0].get("stroke") != series[1].get("stroke")
legend = [g for g in root.iter(NS + "g") if g.get("class") == "legend"]
assert len(legend) == 1
texts = [t.text for t in legend[0].iter(NS + "text")]
assert len(texts) == 2 and texts[0].startswith("run " + sys.argv[2]) and \
    texts[1].startswith("run " + sys.argv[3]), texts
alltext = " ".join(t.text or "" for t in root.iter(NS + "text"))
assert "step" in alltext and "loss" in alltext, alltext
PY
ctl plot "$R1" "$R2" --metric collapse --x epoch --log --max-points 3 --json -o "$T/c.svg" \
	>"$T/plot.json" || fail "plot --metric collapse --x epoch --log failed"
"$PY" - "$T/plot.json" "$T/c.svg" <<'PY' || fail "plot --max-points 3: $(cat "$T/plot.json")"
import json, sys, xml.etree.ElementTree as ET
r = json.load(open(sys.argv[1]))
assert r["metric"] == "collapse" and [x["points"] for x in r["runs"]] == [3, 3], r
root = ET.parse(sys.argv[2]).getroot()
assert any((t.text or "") == "epoch" for t in root.iter("{http://www.w3.org/2000/svg}text"))
PY
rc=0; ctl plot 999 -o "$T/none.svg" 2>"$T/p999.err" || rc=$?
[ $rc = 1 ] && grep -q "no run 999" "$T/p999.err" && [ ! -e "$T/none.svg" ] ||
	fail "plot of an unknown run: exit $rc, $(cat "$T/p999.err")"
rc=0; ctl plot "$R1" --metric nope -o "$T/x.svg" 2>/dev/null || rc=$?
[ $rc = 2 ] || fail "plot --metric nope exited $rc, expected 2"

# ---- compare ---------------------------------------------------------------------
ctl compare "$R1" "$R2" >"$T/cmp.out" 2>"$T/cmp.err" || fail "compare exited $?: $(cat "$T/cmp.err")"
sed -n '/^-- config/,/^-- final/p' "$T/cmp.out" | sed '1d;$d' >"$T/cmp.keys"
[ "$(wc -l <"$T/cmp.keys")" = 1 ] && grep -q '^model.predictor_norm  *bn  *none *$' "$T/cmp.keys" ||
	fail "compare should show model.predictor_norm alone: $(cat "$T/cmp.out")"
for k in probe_acc knn_acc collapse steps "wall time"; do
	grep -q "^$k " "$T/cmp.out" || fail "compare shows no $k: $(cat "$T/cmp.out")"
done
ctl --json compare e2e >"$T/cmp.json" || fail "compare --json e2e failed"
"$PY" - "$T/cmp.json" "$R1" "$R2" <<'PY' || fail "compare --json: $(cat "$T/cmp.json")"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["differing_keys"] == ["model.predictor_norm"], r["differing_keys"]
assert [x["run_id"] for x in r["runs"]] == [int(sys.argv[2]), int(sys.argv[3])], r["runs"]
assert [x["config"]["model.predictor_norm"] for x in r["runs"]] == ["bn", "none"]
for x in r["runs"]:
    assert x["status"] == "completed" and x["final"]["steps"] == 8, x
    assert 0 < x["final"]["knn_acc"] <= 1 and x["wall_s"] > 0, x
PY
rc=0; ctl compare "$R1" 999 2>"$T/c999.err" >/dev/null || rc=$?
[ $rc = 1 ] && grep -q "no run 999" "$T/c999.err" || fail "compare 999: exit $rc, $(cat "$T/c999.err")"
rc=0; ctl compare no-such-experiment 2>"$T/cx.err" >/dev/null || rc=$?
[ $rc = 1 ] && grep -q "no experiment named 'no-such-experiment'" "$T/cx.err" ||
	fail "compare of an unknown experiment: exit $rc, $(cat "$T/cx.err")"

# ---- export: refusals and usage ----------------------------------------------------
rc=0; ctl export 999 -o "$T/x.safetensors" 2>"$T/e999.err" || rc=$?
[ $rc = 1 ] && grep -q "no run 999" "$T/e999.err" && [ ! -e "$T/x.safetensors" ] ||
	fail "export of an unknown run: exit $rc, $(cat "$T/e999.err")"
rc=0; ctl export "$R1" --what weights -o "$T/x.safetensors" 2>/dev/null || rc=$?
[ $rc = 2 ] || fail "export --what weights exited $rc, expected 2"
rc=0; ctl export "$R1" 2>/dev/null || rc=$?
[ $rc = 2 ] || fail "export without -o exited $rc, expected 2"
rc=0; "$BYOLCTL" --coordinator 127.0.0.1:1 export 1 -o "$T/x.safetensors" 2>/dev/null || rc=$?
[ $rc = 3 ] || fail "export from an unreachable daemon exited $rc, expected 3"

# ---- bash completion -------------------------------------------------------------
command -v bash >/dev/null || fail "bash is not installed"
bash -c '
. "$1/../../deploy/bash-completion/byolctl" || exit 1
complete -p byolctl | grep -q "_byolctl byolctl" || { echo "not registered"; exit 1; }
comp() { COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); COMPREPLY=(); _byolctl
	echo "${COMPREPLY[*]}"; }
c=$(comp "$2" "")
for w in submit status list export plot compare help; do
	case " $c " in *" $w "*) ;; *) echo "commands: no $w in: $c"; exit 1;; esac
done
[ "$(comp "$2" exp)" = export ] || { echo "exp -> $(comp "$2" exp)"; exit 1; }
c=$(comp "$2" plot 1 --m)
[ "$c" = "--max-points --metric" ] || { echo "plot --m -> $c"; exit 1; }
[ "$(comp "$2" plot 1 --metric coll)" = collapse ] || exit 1
[ "$(comp "$2" export 1 --what a)" = all ] || exit 1
ids=$(comp "$2" --coordinator "$3" export "")
for id in "$4" "$5"; do
	case " $ids " in *" $id "*) ;; *) echo "run ids: no $id in: $ids"; exit 1;; esac
done
c=$(comp "$2" --coordinator "$3" compare e2)
[ "$c" = e2e ] || { echo "compare e2 -> $c"; exit 1; }
' completion "$E2E_DIR" "$BYOLCTL" "$ADDR" "$R1" "$R2" >"$T/completion.out" 2>&1 ||
	fail "bash completion: $(cat "$T/completion.out")"

echo "ctl_export: ok (runs $R1 $R2)"
