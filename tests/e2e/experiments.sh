#!/bin/sh
# The experiment files of experiments/ without running them: byolctl checks
# each locally (no daemon needed), a real byold with no workers expands each
# into its runs (queued, never trained), and the runs' names, count and
# configs are the ones the file promises; the experiment's stored JSON carries
# its sweep and variants. Then the failure modes of a variant file: a typo in a
# variant name, a bad value in a variant, a variant that sets a swept key —
# exit 1 with the file and line, before any connection.
E2E_LIMIT=${E2E_LIMIT:-60}
. "$(dirname "$0")/cluster.inc"

EXP="$E2E_DIR/../../experiments"
for f in bn-ablation batch-size bn-ablation-cnn; do
	[ -f "$EXP/$f.ini" ] || fail "no $EXP/$f.ini"
done

# ---- local validation: a daemon that does not exist is never reached ---------------
# (a valid file gets past the checks and only then fails to connect: exit 3)
for f in bn-ablation batch-size bn-ablation-cnn; do
	rc=0; "$BYOLCTL" --coordinator 127.0.0.1:1 submit "$EXP/$f.ini" 2>"$T/$f.local.err" || rc=$?
	[ $rc = 3 ] && grep -q "127.0.0.1:1" "$T/$f.local.err" ||
		fail "$f.ini: local checks: exit $rc, $(cat "$T/$f.local.err")"
done

# bad_variant SED_SCRIPT EXPECTED_MESSAGE: a broken copy of bn-ablation.ini
bad_variant() {
	sed "$1" "$EXP/bn-ablation.ini" >"$T/bad.ini"
	rc=0; "$BYOLCTL" --coordinator 127.0.0.1:1 submit "$T/bad.ini" 2>"$T/bad.err" || rc=$?
	[ $rc = 1 ] && grep -qF "$2" "$T/bad.err" ||
		fail "broken file ($1): exit $rc, $(cat "$T/bad.err"), expected '$2'"
}
line_of() {
	grep -n "$1" "$EXP/bn-ablation.ini" | head -n1 | cut -d: -f1
}
L=$(line_of '^experiment.variant')
bad_variant 's/projector_only, predictor_only/projetor_only, predictor_only/' \
	"bad.ini:$L: [sweep] experiment.variant: neither 'bn_both' nor 'projetor_only' has a [variant] section"
L=$(($(line_of '^\[variant layernorm\]') + 1))
bad_variant '/^\[variant layernorm\]/,/^$/s/encoder_norm = ln/encoder_norm = lnn/' \
	"bad.ini:$L: [variant layernorm] model.encoder_norm: 'lnn' is not one of bn, gn, gn_ws, ln, none"
L=$(($(line_of '^\[variant gn_ws\]') + 1))
bad_variant 's/^\(\[variant gn_ws\]\)$/\1\nexperiment.seed = 4/' \
	"bad.ini:$L: [variant gn_ws] experiment.seed: also swept by [sweep] on line"

# ---- expansion by byold ---------------------------------------------------------------
start_daemon
for f in bn-ablation batch-size bn-ablation-cnn; do
	ctl submit "$EXP/$f.ini" --json >"$T/$f.submit" 2>"$T/$f.err" ||
		fail "submit $f.ini: $(cat "$T/$f.err")"
	ctl list --experiment "$f" --limit 100 --json >"$T/$f.json" || fail "list --experiment $f"
done

"$PY" - "$T" <<'PY' || fail "the runs of the experiment files"
import json, sys
T = sys.argv[1]
want = {
    "bn-ablation": ["bn_both", "projector_only", "predictor_only", "encoder_only", "none",
                    "layernorm", "gn_ws", "none_modified_init", "simclr_none", "random_init"],
    "batch-size": ["b64", "b128", "b256_s64", "b512", "b1024", "s16", "s32", "s128", "s256"],
}
want["bn-ablation-cnn"] = want["bn-ablation"]
for exp, variants in want.items():
    sub = json.load(open("%s/%s.submit" % (T, exp)))
    runs = sorted(json.load(open("%s/%s.json" % (T, exp))), key=lambda r: r["run_id"])
    assert [r["run_id"] for r in runs] == sub["run_ids"], (sub, [r["run_id"] for r in runs])
    assert len(runs) == 3 * len(variants), (exp, len(runs))
    names = ["%s/variant=%s,seed=%d" % (exp, v, s) for v in variants for s in (1, 2, 3)]
    assert [r["name"] for r in runs] == names, (exp, [r["name"] for r in runs])
    for r, n in zip(runs, names):
        c = r["config"]
        # queued; the first is "running", waiting for a worker that never comes
        assert r["status"] in ("queued", "running") and r["step"] == 0, r
        assert r["experiment"] == exp, r
        assert c["experiment"]["variant"] == n.split("=")[1].split(",")[0], (n, c["experiment"])
        assert c["experiment"]["seed"] == int(n[-1]) == r["seed"], (n, c["experiment"])
    by = {r["name"]: r["config"] for r in runs}
    m = by["bn-ablation/variant=simclr_none,seed=2"] if exp == "bn-ablation" else None
    if m:
        assert m["experiment"]["method"] == "simclr", m["experiment"]
        assert [m["model"][k] for k in ("encoder_norm", "projector_norm", "predictor_norm")] == ["none"] * 3
        e = by["bn-ablation/variant=encoder_only,seed=1"]["model"]
        assert (e["encoder_norm"], e["projector_norm"], e["predictor_norm"]) == ("bn", "none", "none"), e
        i = by["bn-ablation/variant=none_modified_init,seed=3"]["model"]
        assert i["init"] == "modified" and i["encoder_norm"] == "none", i
        z = by["bn-ablation/variant=random_init,seed=1"]
        assert z["optim"]["lr"] == 0 and z["model"]["predictor_norm"] == "bn", z["optim"]
    elif exp == "bn-ablation-cnn":
        # bn-ablation.ini's runs, config for config, with the CNN encoder
        mlp = json.load(open("%s/bn-ablation.json" % T))
        mlp = {r["name"].split("/", 1)[1]: r["config"] for r in mlp}
        for n, c in by.items():
            m = c["model"]
            assert m["encoder"] == "cnn" and m["encoder_widths"] == [32, 64, 128], (n, m)
            assert m["cnn_strides"] == [1, 2, 2], (n, m)
            o = mlp[n.split("/", 1)[1]]
            for sec in c:
                if sec not in ("experiment", "model"):
                    assert c[sec] == o[sec], (n, sec, c[sec], o[sec])
            for k in m:
                if k not in ("encoder", "encoder_widths", "cnn_strides"):
                    assert m[k] == o["model"][k], (n, k, m[k], o["model"][k])
            assert c["experiment"]["method"] == o["experiment"]["method"], n
    else:
        d = by["batch-size/variant=s16,seed=1"]["data"]
        assert (d["batch_size"], d["shard_size"]) == (256, 16), d
        d = by["batch-size/variant=b1024,seed=3"]["data"]
        assert (d["batch_size"], d["shard_size"]) == (1024, 64), d
        d = by["batch-size/variant=b256_s64,seed=1"]["data"]
        assert (d["batch_size"], d["shard_size"]) == (256, 64), d
PY

# the experiment's JSON in the store: its sweep and its variants
db "SELECT config_json FROM experiments WHERE name = 'bn-ablation';" >"$T/exp.json"
"$PY" - "$T/exp.json" <<'PY' || fail "the stored experiment JSON: $(cat "$T/exp.json")"
import json, sys
e = json.load(open(sys.argv[1]))
assert e["sweep"]["experiment.seed"] == ["1", "2", "3"], e["sweep"]
assert len(e["sweep"]["experiment.variant"]) == 10, e["sweep"]
v = e["variants"]
assert list(v)[0] == "projector_only" and len(v) == 9, list(v)
assert v["none_modified_init"]["model.init"] == "modified", v["none_modified_init"]
assert v["simclr_none"] == {"experiment.method": "simclr", "model.encoder_norm": "none",
                            "model.projector_norm": "none", "model.predictor_norm": "none"}, v
assert e["experiment"]["variant"] == "", e["experiment"]
PY
# byol-worker --local with a variant picked by --set: that variant's keys apply
# (the seed axis left in the file: its first value)
timeout 60 "$WORKER" --local "$EXP/bn-ablation.ini" --set experiment.variant=none \
	--set data.train_limit=256 --set optim.epochs=1 --set optim.warmup_epochs=0 \
	--set eval.probe=false --quiet --checkpoint "$T/v.safetensors" >"$T/v.json" 2>"$T/v.err" ||
	fail "--local with a variant: $(cat "$T/v.err")"
"$PY" - "$T/v.safetensors" <<'PY' || fail "--local did not apply the variant 'none'"
import json, struct, sys
b = open(sys.argv[1], "rb").read()
h = json.loads(b[8:8 + struct.unpack("<Q", b[:8])[0]])
c = json.loads(h["__metadata__"]["config"])
assert c["experiment"]["variant"] == "none" and c["experiment"]["seed"] == 1, c["experiment"]
assert [c["model"][k] for k in ("encoder_norm", "projector_norm", "predictor_norm")] == ["none"] * 3, c["model"]
PY
echo "ok: experiments/bn-ablation.ini (30 runs), batch-size.ini (27 runs) and bn-ablation-cnn.ini (30 runs), named and configured as promised"
