#!/bin/sh
# Peers that break the protocol, against a daemon with a cluster token: garbage
# bytes, an oversized length prefix, a truncated frame, a wrong token, a worker
# whose gradient has the wrong size, workers that misuse shared-memory
# attachments (on the Unix socket, and on TCP where they are not offered). Each
# connection is closed with a logged reason (a ring the daemon cannot map, or a
# ShmRegion with no descriptor, is refused in a ShmAck instead, the connection
# going on; descriptors sent with another message are closed, logged, and do not
# pile up in the daemon), nothing else is disturbed: byolctl keeps answering,
# the real worker keeps its connection, and a run completes with the reference
# bytes. A worker that floods the daemon with messages it ignores gets 20 log
# lines, not one a message; 1,000 connections of garbage in a burst get at most
# 200 lines a window of 10 s over all (at most 2 windows: 400).
. "$(dirname "$0")/cluster.inc"

head -c 32 /dev/urandom | base64 >"$T/token"
chmod 600 "$T/token"
TOKEN_ARGS="--token-file $T/token"
write_experiment "$T/exp.ini" eval.knn_every_epochs=0 eval.probe=false
timeout 60 "$WORKER" --local "$T/exp.ini" --threads 1 --quiet --checkpoint "$T/ref.safetensors" \
	>/dev/null 2>"$T/local.log" || fail "byol-worker --local failed"

start_daemon
start_worker w1 --threads 1
fake() { timeout 30 "$PY" "$E2E_DIR/fakepeer.py" "$@" --timeout 20; }

# expect MODE LOG-TEXT: the fake peer is closed, the daemon logged why, and it
# still answers
expect() {
	mode=$1; want=$2
	fake "$mode" "$ADDR" >"$T/fake-$mode.out" 2>&1 ||
		fail "$mode: the connection was not closed: $(cat "$T/fake-$mode.out")"
	logged "$want" || fail "$mode: no '$want' in the daemon's log"
	ctl list >/dev/null || fail "byolctl got no answer after $mode"
}
expect garbage "malformed Envelope"
expect oversize "exceeds the limit"
expect truncated "stream ended inside a frame"
fake flood "$ADDR" --token-file "$T/token" --requests 5000 >"$T/fake-flood.out" 2>&1 ||
	fail "flood: $(cat "$T/fake-flood.out")"
logged "worker flood: .*(the next ones of this window go unlogged)" ||
	fail "flood: the ignored NodeResults were not cut off in the log"
sleep 0.5
n=$(grep -c "worker flood: NodeResult of run 987654" "$T/byold.log" || true)
[ "$n" -eq 20 ] || fail "flood: $n log lines for 5000 ignored NodeResults (expected 20)"
ctl list >/dev/null || fail "byolctl got no answer after the flood"
expect badtoken "authentication failed: wrong token"
# expect_joined MODE LOG-TEXT [ADDRESS]: the same for a peer that joins (with the
# token), on $ADDR unless told; the peer exits 0 when the daemon did what the
# mode expects (closed the connection, or, for the kept_joined modes below,
# refused in a ShmAck and went on)
expect_joined() {
	fake "$1" "${3:-$ADDR}" --token-file "$T/token" >"$T/fake-$1.out" 2>&1 ||
		fail "$1: not answered as it must be: $(cat "$T/fake-$1.out")"
	logged "$2" || fail "$1: no '$2' in the daemon's log"
	ctl list >/dev/null || fail "byolctl got no answer after $1"
}
# attachment frames (a tensor after the message that announces it)
expect_joined orphanattach "an attachment frame of 8 bytes that no message announced"
expect_joined attachmismatch "node_result announced an attachment of 16 bytes; the attachment frame has 8"
expect_joined attachnone "heartbeat announces an attachment of 8 bytes, which it cannot carry"
# shared-memory attachments: offered on the Unix socket only (each shm mode
# checks the ServerHello); a region or a tensor position out of bounds closes the
# connection, a region that cannot be mapped (its descriptor, sent with it over
# the socket, not a sealed memfd, or none) is refused in a ShmAck and the
# connection goes on, as it does when descriptors come with another message
SOCK="unix:$T/state/byold.sock"
expect_joined shmunagreed \
	"127\.0\.0\.1:[0-9]* shmunagreed: shm_region, but shared memory was not agreed"
expect_joined shmnoring "unix:.* shmnoring: node_result says its tensor is in shared memory, and no ring of the peer is mapped" "$SOCK"
expect_joined shmbadsize \
	"unix:.* shmbadsize: shm_region of 12345 bytes (a multiple of 1 MiB up to [0-9]*)" "$SOCK"
# kept_joined MODE LOG-TEXT: a peer on the Unix socket whose bad shared memory is
# refused in a ShmAck, the connection going on (the peer gets the daemon's next
# Heartbeat)
kept_joined() {
	expect_joined "$1" "$2" "$SOCK"
}
kept_joined shmnotmemfd "unix:.* shmnotmemfd: shared memory off, tensors go over the socket: the descriptor of shm_region 1 is not a sealed memfd"
kept_joined shmnofd "unix:.* shmnofd: shared memory off, tensors go over the socket: no descriptor came with shm_region 1"
# descriptors that come with anything but a ShmRegion are closed by the daemon
fds_before=$(ls "/proc/$DAEMON_PID/fd" | wc -l)
kept_joined shmstrayfd "unix:.* shmstrayfd: 20 file descriptors that no shm_region carries: closed"
fds_after=$(ls "/proc/$DAEMON_PID/fd" | wc -l)
echo "shmstrayfd: byold had $fds_before open descriptors before, $fds_after after"
[ $((fds_after - fds_before)) -lt 10 ] ||
	fail "shmstrayfd: byold's open descriptors went from $fds_before to $fds_after"
expect_joined shmrange "unix:.* shmrange: node_result: a tensor of 64 bytes ending at 1048608 does not lie in the 1048576-byte ring" "$SOCK"

# byolctl with a wrong token or none: refused (exit 1), with the reason logged
head -c 32 /dev/urandom | base64 >"$T/wrong"
chmod 600 "$T/wrong"
rc=0; "$BYOLCTL" --coordinator "$ADDR" --token-file "$T/wrong" list 2>"$T/wrong.err" || rc=$?
[ $rc = 1 ] || fail "byolctl with a wrong token exited $rc: $(cat "$T/wrong.err")"
logged "byolctl: authentication failed: wrong token" ||
	fail "no logged reason for refusing byolctl's wrong token"
rc=0; "$BYOLCTL" --coordinator "$ADDR" list 2>"$T/none.err" || rc=$?
[ $rc = 1 ] && grep -q "token" "$T/none.err" ||
	fail "byolctl without a token: exit $rc, $(cat "$T/none.err")"

# a worker that answers its tree node with a 2-float gradient
fake shortgrad "$ADDR" --token-file "$T/token" >"$T/fake-shortgrad.out" 2>&1 &
FAKE=$!
PIDS="$PIDS $FAKE"
sleep 0.5
ctl submit "$T/exp.ini" --wait >"$T/submit.out" 2>"$T/submit.err" ||
	fail "the run with a bad worker present failed: $(cat "$T/submit.err")"
RUN=$(cat "$T/submit.out")
rc=0; wait "$FAKE" || rc=$?
[ $rc = 0 ] || fail "shortgrad: $(cat "$T/fake-shortgrad.out")"
grep -q "shard_assign" "$T/fake-shortgrad.out" || fail "shortgrad got no work: $(cat "$T/fake-shortgrad.out")"
logged "fakepeer.*grad 8 bytes" ||
	fail "no logged reason for closing the short-gradient worker"
CK=$(latest_checkpoint "$RUN")
cmp "$CK" "$T/ref.safetensors" || fail "the run served beside a bad worker differs from the reference"
metrics_check "$RUN" 8
grep -q "disconnected" "$T/w1.log" && fail "the real worker lost its connection: $(grep disconnected "$T/w1.log")"
# last: the cap is over all connections, and the lines above must be in the log
"$PY" - "$ADDR" <<'PY' || fail "the burst of garbage connections failed"
import socket, struct, sys
host, port = sys.argv[1].rsplit(":", 1)
for _ in range(1000):
    s = socket.create_connection((host, int(port)))
    s.sendall(struct.pack(">I", 24) + b"\xff" * 24)
    s.close()
PY
sleep 1   # every connection handled
n=$(grep -c "malformed Envelope" "$T/byold.log" || true)
[ "$n" -le 400 ] || fail "$n log lines for a burst of 1000 garbage connections (at most 400)"
ctl list >/dev/null || fail "byolctl got no answer after the garbage connections"
echo "bad_peers: ok (run $RUN)"
