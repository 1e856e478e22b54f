#!/bin/sh
# byol-worker --local as a user runs it: a small real run on Fashion-MNIST, its
# JSON, its determinism (two runs, the same checkpoint bytes), and its errors.
set -eu
BIN=${BIN:-bin}
W="$BIN/byol-worker"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
	echo "SKIP: Fashion-MNIST is not installed (scripts/deps.sh installs it)"
	exit 0
fi

cat > "$T/small.ini" <<'INI'
[experiment]
name = e2e-small
seed = 3
[data]
train_limit = 1024
batch_size = 128
shard_size = 32
[model]
encoder_widths = 64, 32
proj_hidden = 64
proj_dim = 16
pred_hidden = 64
[optim]
epochs = 2
[eval]
knn_every_epochs = 1
probe_epochs = 2
INI

# a run, twice, with different thread counts: the same checkpoint bytes
"$W" --local "$T/small.ini" --threads 1 --checkpoint "$T/a.safetensors" >"$T/a.json" 2>"$T/a.err" ||
	{ cat "$T/a.err"; fail "run a failed"; }
"$W" --local "$T/small.ini" --threads 2 --quiet --checkpoint "$T/b.safetensors" >"$T/b.json" 2>"$T/b.err" ||
	{ cat "$T/b.err"; fail "run b failed"; }
cmp "$T/a.safetensors" "$T/b.safetensors" || fail "1 and 2 threads gave different checkpoints"
grep -q '^step 16/16 ' "$T/a.err" || fail "no final progress line: $(cat "$T/a.err")"
[ ! -s "$T/b.err" ] || fail "--quiet printed: $(cat "$T/b.err")"
python3 - "$T/a.json" <<'PY' || fail "bad JSON: $(cat "$T/a.json")"
import json, sys
r = json.load(open(sys.argv[1]))
for k in ("probe_acc", "knn_acc", "collapse", "img_per_s", "steps", "final_loss"):
    assert k in r, k
assert r["steps"] == 16, r
assert 0.3 < r["probe_acc"] <= 1 and 0.3 < r["knn_acc"] <= 1, r
assert 0 < r["collapse"] < 2 and r["img_per_s"] > 0, r
PY
# another seed, other bytes
"$W" --local "$T/small.ini" --quiet --set experiment.seed=4 --set eval.probe=false \
	--checkpoint "$T/c.safetensors" >/dev/null || fail "run c failed"
if cmp -s "$T/a.safetensors" "$T/c.safetensors"; then fail "seed 4 gave seed 3's bytes"; fi

# errors name what was wrong and where
expect_error() { # expected-substring command...
	want=$1; shift
	if "$@" >"$T/out" 2>"$T/err"; then fail "succeeded: $*"; fi
	grep -qF -- "$want" "$T/err" || fail "expected '$want' from $*, got: $(cat "$T/err")"
}
printf '[model]\nencoder_norm = bm\n' > "$T/bad.ini"
expect_error "bad.ini:2:" "$W" --local "$T/bad.ini"
printf '[model]\nencoder_depth = 3\n' > "$T/unknown.ini"
expect_error "unknown.ini:2:" "$W" --local "$T/unknown.ini"
expect_error "model.encoder_norm" "$W" --local "$T/small.ini" --set model.encoder_norm=bm
mkdir "$T/notidx"
cp /usr/share/datasets/fashion-mnist/*.gz "$T/notidx/"
echo "not an idx file" | gzip > "$T/notidx/train-images-idx3-ubyte.gz"
expect_error "train-images-idx3-ubyte.gz" "$W" --local "$T/small.ini" --set data.dir="$T/notidx"
expect_error "missing.ini" "$W" --local "$T/missing.ini"
echo "local: ok"
