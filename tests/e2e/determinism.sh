#!/bin/sh
# The same experiment served by 1 worker and by 3 workers ends in the same
# checkpoint bytes, and those are the bytes of `byol-worker --local` (the
# reference): results depend on the config and seed, never on the cluster. So
# do 3 workers on the Unix socket, two of them taking and sending tensors
# through shared memory (the default there) and one through the socket
# (--no-shm).
. "$(dirname "$0")/cluster.inc"

write_experiment "$T/exp.ini" eval.knn_every_epochs=0 eval.probe=false
timeout 60 "$WORKER" --local "$T/exp.ini" --threads 1 --quiet --checkpoint "$T/local.safetensors" \
	>/dev/null 2>"$T/local.log" || fail "byol-worker --local failed"

start_daemon
start_worker one --threads 2
ctl submit "$T/exp.ini" --wait >"$T/a.out" 2>"$T/a.err" || fail "run with 1 worker: $(cat "$T/a.err")"
A=$(cat "$T/a.out")
kill_worker one
start_worker w1 --threads 1
start_worker w2 --threads 1
start_worker w3 --threads 1
ctl submit "$T/exp.ini" --wait >"$T/b.out" 2>"$T/b.err" || fail "run with 3 workers: $(cat "$T/b.err")"
B=$(cat "$T/b.out")
[ "$A" != "$B" ] || fail "the two submissions gave the same run id $A"
for w in w1 w2 w3; do kill_worker $w; done
start_worker_socket s1 --threads 1
start_worker_socket s2 --threads 1
start_worker_socket s3 --threads 1 --no-shm
ctl submit "$T/exp.ini" --wait >"$T/c.out" 2>"$T/c.err" || fail "run over the socket: $(cat "$T/c.err")"
C=$(cat "$T/c.out")
for w in s1 s2; do
	grep -q "parameters arrive through shared memory" "$T/$w.log" ||
		fail "worker $w (--socket) did not take tensors through shared memory: $(cat "$T/$w.log")"
done
if grep -q "shared memory" "$T/s3.log"; then fail "worker s3 (--no-shm) used shared memory"; fi
if grep -q "shared memory off" "$T/byold.log"; then fail "byold gave up on shared memory"; fi

CA=$(latest_checkpoint "$A")
CB=$(latest_checkpoint "$B")
[ "$CA" != "$CB" ] || fail "runs $A and $B share the checkpoint path $CA"
[ "$(checkpoint_step "$CA")" = 8 ] && [ "$(checkpoint_step "$CB")" = 8 ] ||
	fail "final checkpoints are not at step 8"
n=$(db "SELECT count(*) FROM run_workers WHERE run_id = $B AND shards > 0;")
[ "$n" = 3 ] || fail "run $B: $n workers served it, expected 3"
cmp "$CA" "$CB" || fail "1 worker and 3 workers gave different checkpoints"
CC=$(latest_checkpoint "$C")
n=$(db "SELECT count(*) FROM run_workers WHERE run_id = $C AND shards > 0;")
[ "$n" = 3 ] || fail "run $C: $n workers served it, expected 3"
cmp "$CA" "$CC" || fail "3 workers on the Unix socket (shared memory) gave a different checkpoint"
cmp "$CA" "$T/local.safetensors" || fail "the cluster's checkpoint differs from byol-worker --local's"
metrics_check "$A" 8
metrics_check "$B" 8
metrics_check "$C" 8
echo "determinism: ok (runs $A, $B and $C, $(wc -c <"$CA") bytes each)"
