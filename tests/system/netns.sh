#!/bin/sh
# Multi-host over network namespaces, with packet loss. The coordinator runs in
# one network namespace and each worker in another, joined by point-to-point
# veth pairs on 10.77.N.0/24 that exist only inside those namespaces; the
# cluster token is required. nftables drops 5% of the packets that arrive on
# every veth (so 5% each way). The run completes, and its final checkpoint has
# the bytes of the same experiment run by byold and two workers on loopback. A
# third worker with a wrong token is refused, and byold's log says so.
#
# Needs root, iproute2 (`ip netns`) and nftables (scripts/deps.sh installs
# them); skips with a message otherwise. Bounded by E2E_LIMIT (default 170 s).
# Run from the top of the tree: sh tests/system/netns.sh (BIN=bin by default).
set -eu
if [ "$(id -u)" != 0 ]; then
	echo "SKIP: netns: network namespaces need root"
	exit 0
fi
for tool in ip nft; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "SKIP: netns: '$tool' is not installed (scripts/deps.sh installs iproute2 and nftables)"
		exit 0
	fi
done
PROBE="byold-probe-$$"
if ! ip netns add "$PROBE" 2>/dev/null; then
	echo "SKIP: netns: 'ip netns add' is not permitted here"
	exit 0
fi
if ! ip netns exec "$PROBE" nft add table inet probe 2>/dev/null; then
	ip netns del "$PROBE"
	echo "SKIP: netns: nftables does not work in a network namespace here"
	exit 0
fi
ip netns del "$PROBE"

E2E_LIMIT=${E2E_LIMIT:-170}
. "$(dirname "$0")/../e2e/cluster.inc"

NS_C="byold-c-$$"
NAMESPACES=""
LOSS=5
CPORT=7070

# Kills the processes first (a namespace lives on while a process is in it),
# then deletes every namespace made here; cluster.inc's cleanup does the rest.
netns_cleanup() {
	for p in $PIDS; do kill -9 "$p" 2>/dev/null || true; done
	for p in $PIDS; do wait "$p" 2>/dev/null || true; done
	for ns in $NAMESPACES; do ip netns del "$ns" 2>/dev/null || true; done
}
trap 'rc=$?; set +e; netns_cleanup; (exit $rc); cleanup' EXIT

# nsx NS CMD...: runs CMD in network namespace NS (in the foreground: a
# process started in the background uses `ip netns exec` itself, which execs
# CMD, so that $! is CMD's pid)
nsx() {
	ns=$1; shift
	ip netns exec "$ns" "$@"
}

make_ns() {
	ip netns add "$1"
	NAMESPACES="$NAMESPACES $1"
	ip -n "$1" link set lo up
	# 5% of what arrives on a veth is dropped; the counters show it happened
	nsx "$1" nft -f - <<NFT
table inet byoltest {
	chain input {
		type filter hook input priority 0; policy accept;
		iifname "to-*" counter comment "arrived"
		iifname "to-*" numgen random mod 100 < $LOSS counter drop comment "dropped"
	}
}
NFT
}

# link_host N: namespace byold-wN-PID, joined to the coordinator's by a veth
# pair: to-wN = 10.77.N.1 there, to-c = 10.77.N.2 here
link_host() {
	ns="byold-w$1-$$"
	make_ns "$ns"
	ip -n "$NS_C" link add "to-w$1" type veth peer name to-c netns "$ns"
	ip -n "$NS_C" addr add "10.77.$1.1/24" dev "to-w$1"
	ip -n "$ns" addr add "10.77.$1.2/24" dev to-c
	# wire-sized packets (no 64 KiB segments), so that a loss is one packet
	ip -n "$NS_C" link set "to-w$1" gso_max_size 1500 gso_max_segs 1 up
	ip -n "$ns" link set to-c gso_max_size 1500 gso_max_segs 1 up
}

# packets WHAT: the packets counted by the rule with comment WHAT ("arrived"
# or "dropped"), over every namespace
packets() {
	n=0
	for ns in $NAMESPACES; do
		c=$(nsx "$ns" nft list chain inet byoltest input |
			sed -n "s/.*counter packets \\([0-9]*\\) .*comment \"$1\".*/\\1/p")
		n=$((n + ${c:-0}))
	done
	echo "$n"
}

head -c 32 /dev/urandom | base64 >"$T/token"
head -c 32 /dev/urandom | base64 >"$T/wrong"
chmod 600 "$T/token" "$T/wrong"
TOKEN_ARGS="--token-file $T/token"
# 512 images in batches of 64 (2 shards of 32), 8 epochs: 64 steps, a
# checkpoint every 16, the kNN evaluation after each epoch (an EvalJob each)
write_experiment "$T/exp.ini" data.batch_size=64 optim.epochs=8 checkpoint.every_steps=16 \
	eval.probe=false

# ---- the reference: byold and two workers on loopback ----
t0=$(date +%s)
start_daemon
start_worker r1 --threads 1
start_worker r2 --threads 1
ctl submit "$T/exp.ini" --wait >"$T/ref.out" 2>"$T/ref.err" ||
	fail "the loopback run failed: $(cat "$T/ref.err")"
REF_RUN=$(head -n 1 "$T/ref.out")
REF=$(latest_checkpoint "$REF_RUN")
[ "$(checkpoint_step "$REF")" = 64 ] || fail "the loopback run's checkpoint is not at step 64"
cp "$REF" "$T/ref.safetensors"
kill_daemon
kill_worker r1
kill_worker r2
t_ref=$(( $(date +%s) - t0 ))

# ---- the hosts ----
make_ns "$NS_C"
link_host 1
link_host 2
link_host 3
# the subnet exists only inside the test's namespaces (nothing is sent to
# check it: the root namespace's own table must not know it)
if ip -o addr show | grep -q "inet 10\.77\."; then
	fail "a 10.77. address is configured outside the test's namespaces"
fi
ip -n "$NS_C" -o addr show | grep -q "inet 10\.77\.3\.1/24" ||
	fail "the coordinator's namespace has no 10.77.3.1"

# byold in its namespace, on every address there, token required; byolctl
# reaches it through its Unix socket (the filesystem is shared)
CSTATE="$T/cstate"
mkdir -p "$CSTATE"
ip netns exec "$NS_C" "$BYOLD" --state-dir "$CSTATE" --listen "0.0.0.0:$CPORT" --socket "$CSTATE/byold.sock" \
	--token-file "$T/token" >"$T/cbyold.log" 2>&1 &
CPID=$!
PIDS="$PIDS $CPID"
nctl() {
	timeout 60 "$BYOLCTL" --socket "$CSTATE/byold.sock" --token-file "$T/token" "$@"
}
i=0
until nctl list >/dev/null 2>&1; do
	i=$((i + 1))
	[ $i -lt 100 ] || fail "byold in $NS_C did not answer within 10 s"
	kill -0 "$CPID" 2>/dev/null || fail "byold in $NS_C exited at start-up"
	sleep 0.1
done
grep -q "listening on 0.0.0.0:$CPORT .*token required" "$T/cbyold.log" ||
	fail "byold does not say it listens on 0.0.0.0:$CPORT with a token"

# net_worker N NAME TOKEN: byol-worker in namespace N, to 10.77.N.1
net_worker() {
	ip netns exec "byold-w$1-$$" "$WORKER" --coordinator "10.77.$1.1:$CPORT" --name "$2" \
		--token-file "$3" --threads 1 >>"$T/$2.log" 2>&1 &
	echo $! >"$T/$2.pid"
	PIDS="$PIDS $!"
}
net_worker 1 w1 "$T/token"
net_worker 2 w2 "$T/token"

# the intruder: a worker with a wrong token, from a third namespace
net_worker 3 intruder "$T/wrong"
i=0
until grep -q "10\.77\.3\.2.*authentication failed: wrong token" "$T/cbyold.log"; do
	i=$((i + 1))
	[ $i -lt 200 ] || fail "byold did not log the refusal of the wrong token from 10.77.3.2"
	sleep 0.1
done
REFUSAL=$(grep -m 1 "10\.77\.3\.2.*authentication failed: wrong token" "$T/cbyold.log")
kill_worker intruder
grep -q "refused by the server: authentication failed: wrong token" "$T/intruder.log" ||
	fail "the worker with the wrong token was not told why it was refused"
n=$(sqlite3 -cmd '.timeout 5000' "$CSTATE/byold.db" "SELECT count(*) FROM workers WHERE name = 'intruder';")
[ "$n" = 0 ] || fail "the refused worker was recorded in the workers table"

# ---- the run over the lossy links ----
t1=$(date +%s)
a0=$(packets arrived)
d0=$(packets dropped)
nctl submit "$T/exp.ini" --wait >"$T/net.out" 2>"$T/net.err" ||
	fail "the run over the namespaces failed: $(cat "$T/net.err")"
t_net=$(( $(date +%s) - t1 ))
NET_RUN=$(head -n 1 "$T/net.out")
a1=$(packets arrived)
d1=$(packets dropped)
NET=$(json_get "$(nctl status "$NET_RUN" --json)" checkpoint)
[ -n "$NET" ] && [ -f "$NET" ] || fail "run $NET_RUN: no checkpoint file ('$NET')"
[ "$(checkpoint_step "$NET")" = 64 ] || fail "run $NET_RUN: the checkpoint is not at step 64"
cmp "$NET" "$T/ref.safetensors" ||
	fail "the checkpoint over the lossy namespaces differs from the loopback one"

# both workers served the run, from their own subnets
for w in w1 w2; do
	s=$(sqlite3 -cmd '.timeout 5000' "$CSTATE/byold.db" \
		"SELECT shards FROM run_workers WHERE run_id = $NET_RUN AND worker = '$w';")
	[ "${s:-0}" -gt 0 ] || fail "worker $w served no shard of run $NET_RUN"
done
for n in 1 2; do
	grep -q "worker w$n joined: .* 10\.77\.$n\.2:" "$T/cbyold.log" ||
		fail "byold's log does not show worker w$n joining from 10.77.$n.2"
done
lost=$((d1 - d0))
seen=$((a1 - a0))
# 5% of thousands of packets: far from both 0 and 10% (binomial spread ~0.1%)
[ "$seen" -gt 1000 ] && [ $((100 * lost)) -ge $((2 * seen)) ] &&
	[ $((100 * lost)) -le $((8 * seen)) ] ||
	fail "nftables dropped $lost of $seen packets during the run, not about $LOSS%"

echo "refused: $REFUSAL"
echo "netns: ok (loopback run ${t_ref} s; run $NET_RUN over 3 namespaces with ${LOSS}% loss each way" \
	"${t_net} s, $lost of $seen packets dropped; checkpoint $(wc -c <"$NET") bytes identical)"
