#!/bin/sh
# Learning checks of the engine on the full Fashion-MNIST split, one --local run
# each; every run's JSON line is appended to $OUT (default bench/learning.jsonl).
# usage: bench/learning.sh [NAME ...]   (no NAME: all of them, in order)
set -eu
cd "$(dirname "$0")/.."
OUT=${OUT:-bench/learning.jsonl}
THREADS=${THREADS:-2}
EXP=deploy/examples/byol-fmnist.ini
# the reference recipe: Adam lr 1e-3, B = 256, BN everywhere, 10 epochs
REF="--set optim.name=adamw --set optim.lr=1e-3 --set optim.weight_decay=0 --set optim.warmup_epochs=0 --set eval.knn_every_epochs=0"
run() {
	name=$1; shift
	echo "== $name: $*" >&2
	start=$(date +%s)
	mkdir -p "${CKPT_DIR:-/tmp/byol-learning}"
	line=$(${WORKER:-bin/byol-worker} --local $EXP --threads "$THREADS" --set experiment.name="$name" \
		--checkpoint "${CKPT_DIR:-/tmp/byol-learning}/$name.safetensors" "$@")
	echo "$line" | sed "s/}\$/,\"wall_s\":$(( $(date +%s) - start )),\"coretype\":\"${OPENBLAS_CORETYPE:-unset}\"}/" >> "$OUT"
	echo "$line" >&2
}
all="random-init bn-10 none-10 gnws-modified-10 lars-10"
[ $# -gt 0 ] && all="$*"
for n in $all; do
	case $n in
	random-init) run $n $REF --set optim.lr=0 --set optim.epochs=1 ;;
	bn-10) run $n $REF ;;
	bn-10-s256) run $n $REF --set data.shard_size=256 ;;
	none-10) run $n $REF --set model.encoder_norm=none --set model.projector_norm=none --set model.predictor_norm=none ;;
	gnws-modified-10) run $n $REF --set model.encoder_norm=gn_ws --set model.projector_norm=gn_ws --set model.predictor_norm=gn_ws --set model.init=modified ;;
	lars-10) run $n --set eval.knn_every_epochs=0 ;;
	lars-10-lr1) run $n --set eval.knn_every_epochs=0 --set optim.lr=1.0 ;;
	lars-10-lr2) run $n --set eval.knn_every_epochs=0 --set optim.lr=2.0 ;;
	*) echo "unknown run $n" >&2; exit 2 ;;
	esac
done
