#!/bin/sh
# Distributed training on loopback: what a byold cluster costs against one
# process. Prints four figures (medians over the steps after WARM warm-up steps):
#
#  (1) img/s of byold + 2 byol-worker x 1 thread against `byol-worker --local
#      --threads 2` on the same experiment (the default MLP, TRAIN_LIMIT images,
#      1 epoch, no kNN, no probe), with the workers connected four ways: over
#      TCP (127.0.0.1); over byold's Unix socket with the tensors through the
#      socket (--no-shm); over the Unix socket with the tensors through shared
#      memory (the default there: what workers on byold's own machine get); and
#      the same with each worker bound to a core of its own (taskset; byold
#      unbound), which shows what the kernel's placement of the three
#      processes costs; and the CPU time per step of byold and the workers (the
#      scheduler's exact time on a CPU), which sets a floor under the step on
#      this machine's cores;
#      The same, once each over TCP and shared memory, at global batches
#      BATCHES (more compute a step for the same bytes);
#  (2) the coordinator's share of a step of that run: the time a step spends in
#      byold (packing and sending the parameters, the apply, the threadpool's
#      queueing, the bookkeeping) against the whole step, from byold's per-step
#      debug line; and the step overhead (coordinator + wire) measured with
#      simulated workers on the same experiment, against the real step;
#  (3) bytes on the wire per step per worker, each way, against the parameter
#      bytes: exact frame bytes counted by simulated workers serving the same
#      experiment, and the TCP payload bytes of the real workers' sockets (ss)
#      over the whole run (one-off messages included);
#  (4) scaling: W = 1 .. 32 simulated workers (bench_simworker: they answer
#      every ShardAssign at once from a fixed gradient), batch 2048 in 32 shards
#      of 64, the default MLP: ms per step of coordinator + wire against W; the
#      wire phase's GB/s against the machine's loopback TCP (bench/loopback.py:
#      one stream, two at once, messages of the parameters' size).
#
# Everything runs on 127.0.0.1; every process this script starts is killed on
# exit, and the whole script is bounded by LIMIT seconds (default 290).
#
# usage: bench/cluster.sh            (after `make && make bench`)
# environment:
#   BIN=bin  TRAIN_LIMIT=16384  ROUNDS=2  WARM=2  SCALE="1 2 4 8 16 32"  SCALE_STEPS=8
#   BATCHES="512 1024"  BATCH_STEPS=32   (BATCHES= skips the larger batches)
#   (ROUNDS: rounds of (1): a cluster run over each connection, then a local run;
#    one local run comes first)
#   PAUSE_PIDS="pid ..."  processes to SIGSTOP while measuring (other jobs on
#                         the machine); they get SIGCONT on exit, whatever happens
#   PERF=1                perf record byold over the steps >= WARM of the largest W
#                         of (4); prints its top symbols
#   KEEP=1                keep the temporary directory (logs)
set -eu
cd "$(dirname "$0")/.."
BIN=${BIN:-bin}
TRAIN_LIMIT=${TRAIN_LIMIT:-16384}
ROUNDS=${ROUNDS:-2}
WARM=${WARM:-2}
SCALE=${SCALE:-1 2 4 8 16 32}
SCALE_STEPS=${SCALE_STEPS:-8}
BATCHES=${BATCHES-512 1024}
BATCH_STEPS=${BATCH_STEPS:-32}
LIMIT=${LIMIT:-290}
DATA=/usr/share/datasets/fashion-mnist
if [ -x /usr/bin/python3 ]; then PY=/usr/bin/python3; else PY=python3; fi

for p in byold byol-worker byolctl bench_simworker; do
	[ -x "$BIN/$p" ] || { echo "cluster.sh: $BIN/$p is not built (make && make bench)" >&2; exit 1; }
done
[ -f "$DATA/train-images-idx3-ubyte.gz" ] ||
	{ echo "cluster.sh: Fashion-MNIST is not installed (scripts/deps.sh)" >&2; exit 1; }
command -v ss >/dev/null || { echo "cluster.sh: needs ss (iproute2)" >&2; exit 1; }

T=$(mktemp -d "${TMPDIR:-/tmp}/byold-bench.XXXXXX")
PIDS=""
PAUSED=""

cleanup() {
	rc=$?
	trap - EXIT INT TERM HUP
	for p in $PIDS; do kill -TERM "$p" 2>/dev/null || true; done
	sleep 0.2
	for p in $PIDS; do kill -KILL "$p" 2>/dev/null || true; done
	[ -n "${WATCHDOG:-}" ] && kill "$WATCHDOG" 2>/dev/null || true
	for p in $PAUSED; do kill -CONT "$p" 2>/dev/null || true; done
	[ -n "$PAUSED" ] && echo "resumed:$PAUSED" >&2
	wait 2>/dev/null || true
	if [ "${KEEP:-0}" = 1 ]; then echo "kept $T" >&2; else rm -rf "$T"; fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

SELF=$$
(
	i=0
	while [ $i -lt "$LIMIT" ]; do
		sleep 1
		kill -0 "$SELF" 2>/dev/null || exit 0
		i=$((i + 1))
	done
	echo "cluster.sh: over the time limit of $LIMIT s" >&2
	kill -TERM "$SELF"
) </dev/null >/dev/null 2>&1 &
WATCHDOG=$!

die() {
	echo "cluster.sh: $*" >&2
	for f in "$T"/*.log; do
		[ -f "$f" ] || continue
		echo "---- $(basename "$f") (last 15 lines)" >&2
		tail -n 15 "$f" >&2
	done
	exit 1
}

for p in ${PAUSE_PIDS:-}; do
	if kill -STOP "$p" 2>/dev/null; then PAUSED="$PAUSED $p"; fi
done

PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])')
ADDR="127.0.0.1:$PORT"
LOG="$T/byold.log"

ctl() {
	timeout 200 "$BIN/byolctl" --coordinator "$ADDR" "$@"
}

# joined N: waits until N more workers have joined since the mark
JOIN_MARK=0
joined() {
	want=$((JOIN_MARK + $1))
	i=0
	while [ "$(grep -c ' joined: host ' "$LOG" || true)" -lt "$want" ]; do
		i=$((i + 1))
		[ $i -lt 300 ] || die "only $(grep -c ' joined: host ' "$LOG") of $want workers joined"
		sleep 0.05
	done
	JOIN_MARK=$want
}

# stop_pids PID...: SIGTERM, wait for each, and forget them
stop_pids() {
	for p in "$@"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "$@"; do wait "$p" 2>/dev/null || true; done
	keep=""
	for q in $PIDS; do
		case " $* " in *" $q "*) ;; *) keep="$keep $q" ;; esac
	done
	PIDS=$keep
}

# experiment FILE NAME BATCH LIMIT: the default MLP, one epoch, no evaluation
experiment() {
	cat >"$1" <<INI
[experiment]
name = $2
seed = 1
[data]
train_limit = $4
batch_size = $3
shard_size = 64
[optim]
epochs = 1
warmup_epochs = 0
[eval]
knn_every_epochs = 0
probe = false
[checkpoint]
every_steps = 1000000
keep = 1
INI
}

# submit FILE: runs it to the end; its run id in $RUN
submit() {
	ctl submit "$1" --wait >"$T/submit.out" 2>"$T/submit.err" ||
		die "submit $1: $(cat "$T/submit.err")"
	RUN=$(cat "$T/submit.out")
}

# worker_bytes: "up down" TCP payload bytes of every byol-worker socket to the daemon
worker_bytes() {
	ss -tinpH state established "( dport = :$PORT )" | "$PY" -c '
import re, sys
up = down = 0
cur = None
for line in sys.stdin:
    if not line[0].isspace():
        cur = "byol-worker" in line
        if cur:
            m = re.search(r"bytes_acked:(\d+)", line)
            n = re.search(r"bytes_received:(\d+)", line)
            if m: up += int(m.group(1))
            if n: down += int(n.group(1))
        continue
    if cur:
        m = re.search(r"bytes_acked:(\d+)", line)
        n = re.search(r"bytes_received:(\d+)", line)
        if m: up += int(m.group(1))
        if n: down += int(n.group(1))
print(up, down)'
}

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# the kernels OpenBLAS picks here (the figures depend on them)
OB=$(ldd "$BIN/byol-worker" | awk '/openblas/ { print $3; exit }')
CORE=$("$PY" -c 'import ctypes, sys
l = ctypes.CDLL(sys.argv[1]); l.openblas_get_corename.restype = ctypes.c_char_p
print(l.openblas_get_corename().decode())' "$OB" 2>/dev/null || echo "?")
echo "bench/cluster.sh: byold on $ADDR, $(nproc) cores," \
	"OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset} (OpenBLAS core: $CORE)"
echo "load average at start: $(loadavg)${PAUSED:+ (paused:$PAUSED)}"
LOAD0=$(loadavg)

# ---- (1)-(3) byold + 2 workers x 1 thread, and the reference: one process with 2
# threads, interleaved (local, cluster, local, cluster, local: the machine's other
# load drifts) ----------------------------------------------------------------------
experiment "$T/mlp.ini" bench-mlp 256 "$TRAIN_LIMIT"
local_run() {
	timeout 200 "$BIN/byol-worker" --local "$T/mlp.ini" --threads 2 >>"$T/local.json" \
		2>>"$T/local.log" || die "byol-worker --local failed"
}
local_run

SOCK="$T/state/byold.sock"
"$BIN/byold" --state-dir "$T/state" --listen "$ADDR" --socket "$SOCK" \
	--log-level debug >"$LOG" 2>&1 &
DAEMON=$!
PIDS="$PIDS $DAEMON"
i=0
until "$BIN/byolctl" --coordinator "$ADDR" list >/dev/null 2>&1; do
	i=$((i + 1))
	[ $i -lt 100 ] || die "byold did not answer on $ADDR"
	kill -0 "$DAEMON" 2>/dev/null || die "byold exited at start-up"
	sleep 0.1
done
# start_workers VIA: 2 workers x 1 thread, connected over TCP (VIA tcp), the
# Unix socket without shared memory (unix), the Unix socket with it (shm), or
# that and each bound to a core of its own with taskset (pinned); their pids in
# $WPIDS
start_workers() {
	WPIDS=""
	i=0
	for n in w1 w2; do
		case $1 in
		tcp) conn_args="--coordinator $ADDR" ;;
		unix) conn_args="--socket $SOCK --no-shm" ;;
		*) conn_args="--socket $SOCK" ;;
		esac
		pin=""
		[ "$1" = pinned ] && pin="taskset -c $((i % $(nproc)))"
		$pin "$BIN/byol-worker" $conn_args --name "$1-$n" --threads 1 >"$T/$1-$n.log" 2>&1 &
		WPIDS="$WPIDS $!"
		i=$((i + 1))
	done
	PIDS="$PIDS $WPIDS"
	joined 2
}

# cluster_run VIA R: the experiment once with start_workers VIA, the CPU time of
# byold and the workers over steps WARM .. the last into $T/cpu.VIA.R
cluster_run() {
	start_workers "$1"
	[ "$1.$2" = tcp.1 ] && B0=$(worker_bytes)
	"$PY" bench/cpuwatch.py "$LOG" $((WARM - 1)) $((STEPS - 1)) "$T/cpu.$1.$2" \
		"$DAEMON" $WPIDS &
	CPUW=$!
	PIDS="$PIDS $CPUW"
	submit "$T/mlp.ini"
	stop_pids "$CPUW"
	[ "$1.$2" = tcp.1 ] && B1=$(worker_bytes)
	REAL_RUNS="$REAL_RUNS $1:$2:$RUN"
	stop_pids $WPIDS
}

VIAS="tcp unix shm"
command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ] && VIAS="$VIAS pinned"
REAL_RUNS=""
STEPS=$((TRAIN_LIMIT / 256))
r=1
while [ $r -le "$ROUNDS" ]; do
	for via in $VIAS; do cluster_run "$via" $r; done
	local_run
	r=$((r + 1))
done

# ---- (1b) larger global batches: more compute a step for the same bytes ------------
# one round each of tcp, shm and --local, BATCH_STEPS steps of B images
BATCH_RUNS=""
for b in $BATCHES; do
	experiment "$T/b$b.ini" "bench-b$b" "$b" $((b * BATCH_STEPS))
	for via in tcp shm; do
		start_workers "$via"
		submit "$T/b$b.ini"
		BATCH_RUNS="$BATCH_RUNS $b:$via:$RUN"
		stop_pids $WPIDS
	done
	timeout 200 "$BIN/byol-worker" --local "$T/b$b.ini" --threads 2 >>"$T/local.b$b.json" \
		2>>"$T/local.log" || die "byol-worker --local (batch $b) failed"
done

# ---- (2)-(3) the same experiment served by 2 simulated workers --------------------
# sim W TAG FILE: runs FILE with W simulated workers (run id in $RUN); their step
# lines go to $T/TAG.sim
sim() {
	SPIDS=""
	j=1
	while [ $j -le "$1" ]; do
		"$BIN/bench_simworker" --coordinator "$ADDR" --name "$2-$j" >>"$T/$2.sim" \
			2>>"$T/sim.log" &
		SPIDS="$SPIDS $!"
		j=$((j + 1))
	done
	PIDS="$PIDS $SPIDS"
	joined "$1"
	submit "$3"
	stop_pids $SPIDS
}
sim 2 mlp2 "$T/mlp.ini"
RUN_SIM2=$RUN

# ---- (4) scaling with simulated workers --------------------------------------------
experiment "$T/wide.ini" bench-wide 2048 $((2048 * SCALE_STEPS))
# PERF=1: byold is recorded from the end of step WARM - 1 to the end of the last
# step of the last (largest) W
LAST_W=$(echo $SCALE | awk '{ print $NF }')
# after_line N PATTERN: waits until more than N lines of the log match
after_line() {
	while [ "$(grep -c "$2" "$LOG" || true)" -le "$1" ]; do sleep 0.02; done
}
SCALE_RUNS=""
for W in $SCALE; do
	if [ "${PERF:-0}" = 1 ] && [ "$W" = "$LAST_W" ]; then
		first="debug: run [0-9]* step $((WARM - 1)): "
		last="debug: run [0-9]* step $((SCALE_STEPS - 1)): "
		n_first=$(grep -c "$first" "$LOG" || true)
		n_last=$(grep -c "$last" "$LOG" || true)
		(
			after_line "$n_first" "$first"
			perf record -q -F 999 -p "$DAEMON" -o "$T/perf.data" &
			pp=$!
			trap 'kill -INT $pp; wait $pp; exit 0' TERM
			after_line "$n_last" "$last"
			kill -INT $pp
			wait $pp
		) >"$T/perf.log" 2>&1 &
		PERF_PID=$!
		PIDS="$PIDS $PERF_PID"
	fi
	sim "$W" "w$W" "$T/wide.ini"
	SCALE_RUNS="$SCALE_RUNS $W:$RUN"
done
LOAD1=$(loadavg)
if [ -n "${PERF_PID:-}" ]; then
	stop_pids "$PERF_PID"
fi

# ---- the machine's own limit: loopback TCP with messages of the parameters' size --
LOOP=$("$PY" bench/loopback.py 13210624 20) || die "bench/loopback.py failed"

# ---- the figures ---------------------------------------------------------------
"$PY" - "$T" "$WARM" "$REAL_RUNS" "$RUN_SIM2" "$B0" "$B1" "$SCALE_RUNS" "$LOAD0" "$LOAD1" \
	"$LOOP" "$BATCH_RUNS" <<'PY'
import json, os, re, statistics as st, sys
T, WARM = sys.argv[1], int(sys.argv[2])
runs_by = [x.split(":") for x in sys.argv[3].split()]     # VIA:ROUND:RUN
vias = list(dict.fromkeys(v for v, r, run in runs_by))
run_of = {v: [int(run) for w, r, run in runs_by if w == v] for v in vias}
rounds_of = {v: [int(r) for w, r, run in runs_by if w == v] for v in vias}
real_runs, run_sim2 = run_of["tcp"], int(sys.argv[4])
b0, b1 = [int(x) for x in sys.argv[5].split()], [int(x) for x in sys.argv[6].split()]
scale = [tuple(int(v) for v in x.split(":")) for x in sys.argv[7].split()]
log = open(T + "/byold.log").read()
line = re.compile(r"debug: run (\d+) step (\d+): ([\d.]+) ms \(send ([\d.]+), wait ([\d.]+), "
                  r"apply ([\d.]+), store ([\d.]+)\)")
steps = {}
for m in line.finditer(log):
    run, k = int(m.group(1)), int(m.group(2))
    wall, send, wait, apply_, store = (float(m.group(i)) for i in range(3, 8))
    total = wall + store
    steps.setdefault(run, []).append(dict(
        k=k, total=total, send=send, wait=wait, apply=apply_, store=store,
        queue=max(0.0, wall - send - wait - apply_), coord=wall - wait + store))
setup = {}
for m in re.finditer(r"run (\d+): (\d+) parameters, (\d+) BN statistics",
                     open(T + "/sim.log").read()):
    setup[int(m.group(1))] = (int(m.group(2)), int(m.group(3)))

def med(run, key):
    v = [s[key] for s in steps[run] if s["k"] >= WARM]
    return st.median(v)

def sim_bytes(tag, run):
    rx, tx = {}, {}
    for ln in open("%s/%s.sim" % (T, tag)):
        f = ln.split()
        if f[0] == "step" and int(f[1]) == run:
            k = int(f[2])
            rx.setdefault(k, []).append(int(f[4]))
            tx.setdefault(k, []).append(int(f[6]))
    per_w = lambda d: st.median([sum(v) / len(v) for k, v in d.items() if k >= WARM])
    return per_w(rx), per_w(tx)

def img_s(run, batch):
    """img/s over all the steps of a run, the first ones included"""
    return len(steps[run]) * batch / (sum(s["total"] for s in steps[run]) / 1e3)

B = 256
locals_ = [json.loads(l)["img_per_s"] for l in open(T + "/local.json") if l.strip()]
loc = st.median(locals_)
n_steps = len(steps[real_runs[0]])
label = {"tcp": "over TCP (127.0.0.1)", "unix": "Unix socket, no shm",
         "shm": "Unix socket + shm", "pinned": "Unix + shm, pinned"}
print("\n(1) throughput, default MLP, B=256 (4 shards of 64), %d steps per run" % n_steps)
print("    byol-worker --local --threads 2            %6.0f img/s  %.1f ms a step   median of %s"
      " (its own figure, all steps)" % (loc, B / loc * 1e3, ", ".join("%.0f" % x for x in locals_)))
print("    byold + 2 workers x 1 thread  (img/s over all steps, median step of steps >= %d,"
      " ratios to local)" % WARM)
for v in vias:
    rr = run_of[v]
    all_in = [img_s(r, B) for r in rr]
    med_step = st.median(med(r, "total") for r in rr)
    dist = st.median(all_in)
    print("      %-24s %6.0f img/s  %.1f ms median step   %.2fx all steps, %.2fx median step"
          "   target >= 0.9x" % (label[v], dist, med_step, dist / loc, B / med_step * 1e3 / loc))
print("    (each round runs %s, then --local; one --local comes first; no shm: the tensors"
      " through the socket\n     (--no-shm); shm: through shared memory; pinned: shm and each"
      " worker bound to a core of its own\n     with taskset, byold unbound)" % ", ".join(vias))
batch_runs = [x.split(":") for x in (sys.argv[11].split() if len(sys.argv) > 11 else [])]
if batch_runs:
    print("    larger global batches (shards of 64; %d steps a run; one run each): the same bytes"
          " a step, more compute" % len(steps[int(batch_runs[0][2])]))
for b in dict.fromkeys(x[0] for x in batch_runs):
    try:
        lb = [json.loads(l)["img_per_s"] for l in open("%s/local.b%s.json" % (T, b)) if l.strip()]
    except OSError:
        continue
    bl = st.median(lb)
    print("      B=%-5s %-24s %6.0f img/s  %.1f ms a step" % (b, "--local --threads 2", bl,
                                                         int(b) / bl * 1e3))
    for bb, v, run in batch_runs:
        if bb != b or int(run) not in steps:
            continue
        alls = img_s(int(run), int(b))
        ms = med(int(run), "total")
        print("      B=%-5s %-24s %6.0f img/s  %.1f ms median step   %.2fx all steps, %.2fx"
              " median step" % (b, label[v], alls, ms, alls / bl, int(b) / ms * 1e3 / bl))

P, NB = setup[run_sim2]
pbytes = 4 * P
cores = os.cpu_count()
print("\n(2) where a step goes (byold + 2 workers x 1 thread; medians over the steps >= %d, ms)"
      % WARM)
for v in vias:
    pool = [s for r in run_of[v] for s in steps[r] if s["k"] >= WARM]
    pm = lambda key: st.median(s[key] for s in pool)
    share = st.median([s["coord"] / s["total"] for s in pool])
    print("    %-20s step %.1f = send %.1f + wait for workers %.1f + apply %.1f + queue %.1f"
          " + store %.1f" % (label[v], pm("total"), pm("send"), pm("wait"), pm("apply"),
                             pm("queue"), pm("store")))
    print("    %-20s coordinator share (send + apply + queue + store) / step: %.1f%%"
          "   target <= 10%%" % ("", 100 * share))
print("    (send ends when every StepParams is handed to the kernel, or copied into shared"
      " memory: a Unix socket\n     takes about 200 KB at once where loopback TCP takes"
      " megabytes, so over it the copying falls in wait)")
pool = [s for r in real_runs for s in steps[r] if s["k"] >= WARM]
pm = lambda key: st.median(s[key] for s in pool)

def cpu_of(v):
    out = []
    for r in rounds_of[v]:
        try:
            f = open("%s/cpu.%s.%d" % (T, v, r)).read().split()
        except OSError:
            continue
        out.append((int(f[0]), float(f[1]),
                    [tuple(float(x) for x in p.split(":")[1:]) for p in f[2:]]))
    return out

print("    CPU per step (steps >= %d; time on a CPU from the scheduler, user/system from ticks):"
      % WARM)
for v in vias:
    runs = cpu_of(v)
    if not runs:
        continue
    per = lambda i, j: st.median(1e3 * p[i][j] / k for k, w, p in runs)
    nproc_ = len(runs[0][2])
    byold = per(0, 2)
    work = [per(i, 2) for i in range(1, nproc_)]
    total = byold + sum(work)
    wall = st.median(1e3 * w / k for k, w, p in runs)
    floor = total / cores
    print("      %-20s byold %.1f (system %.1f), workers %s core-ms; %.1f in a step of %.1f ms:"
          % (label[v], byold, per(0, 1), " + ".join("%.1f" % x for x in work), total, wall))
    print("      %-20s %.0f%% of %d cores busy; no schedule is shorter than %.1f ms: ratio <= %.2fx"
          % ("", 100 * total / (cores * wall), cores, floor, (B / loc * 1e3) / floor))
ov = med(run_sim2, "total")
print("    the same step with 2 simulated workers (coordinator + wire, no compute): %.1f ms"
      " = %.1f%% of the real step" % (ov, 100 * ov / pm("total")))
print("      (send %.1f, wait = wire %.1f, apply %.1f, queue %.1f, store %.1f)"
      % (med(run_sim2, "send"), med(run_sim2, "wait"), med(run_sim2, "apply"),
         med(run_sim2, "queue"), med(run_sim2, "store")))

rx, tx = sim_bytes("mlp2", run_sim2)
print("\n(3) bytes per step per worker; %d parameters = %.2f MB, %d BN statistics"
      % (P, pbytes / 1e6, NB))
print("    frames (simulated workers, steps >= %d): down %.0f (%.3fx params), up %.0f (%.3fx),"
      " both %.3fx   target <= 2x" % (WARM, rx, rx / pbytes, tx, tx / pbytes, (rx + tx) / pbytes))
up, down = b1[0] - b0[0], b1[1] - b0[1]
n = n_steps * 2
print("    TCP payload of the 2 real workers over the whole run (incl. set-up, the first"
      " target, the final kNN job, heartbeats):")
print("      down %.0f (%.3fx), up %.0f (%.3fx) per step per worker, both %.3fx"
      % (down / n, down / n / pbytes, up / n, up / n / pbytes, (up + down) / n / pbytes))

print("\n(4) scaling: simulated workers, B=2048 in 32 shards of 64, default MLP"
      " (medians, ms per step)")
print("    %3s %8s %7s %7s %7s %7s %7s %9s %10s" % ("W", "step", "send", "wire", "apply", "queue",
      "store", "ms/worker", "wire GB/s"))
for W, run in scale:
    if run not in steps:
        print("    %3d (no step lines)" % W)
        continue
    tot = med(run, "total")
    rxw, txw = sim_bytes("w%d" % W, run)
    gbs = W * (rxw + txw) / (med(run, "wait") / 1e3) / 1e9 if med(run, "wait") > 0 else 0
    print("    %3d %8.1f %7.1f %7.1f %7.1f %7.1f %7.1f %9.1f %10.2f" % (W, tot, med(run, "send"),
          med(run, "wait"), med(run, "apply"), med(run, "queue"), med(run, "store"), tot / W, gbs))
print("    (wire = from the last send to the last NodeResult in: the parameters out and the")
print("     gradients in through byold's loop; ms/worker = step / W; the simulated workers")
print("     share the machine's cores with byold)")
one, two = (float(x) for x in sys.argv[10].split())
rates = []
for W, run in scale:
    if run in steps and med(run, "wait") > 0:
        rxw, txw = sim_bytes("w%d" % W, run)
        rates.append(W * (rxw + txw) / (med(run, "wait") / 1e3) / 1e9)
print("    loopback TCP here (bench/loopback.py, 13.2 MB messages): %.2f GB/s one stream,"
      " %.2f GB/s two at once" % (one, two))
if rates:
    print("    byold's wire phase: %.2f-%.2f GB/s = %.2f-%.2fx of two streams"
          % (min(rates), max(rates), min(rates) / two, max(rates) / two))
print("\nload average: %s at start, %s at the end" % (sys.argv[8], sys.argv[9]))
PY
if [ -f "$T/perf.data" ]; then
	echo
	echo "perf: byold over the steps >= $WARM of W = $LAST_W, self time by symbol (top 15)"
	perf report -i "$T/perf.data" --no-children --sort dso,symbol --stdio 2>/dev/null |
		grep -v '^#' | grep '%' | grep -v '^ *-' | grep -v '^ *|' | head -n 15
fi
