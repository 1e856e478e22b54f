#!/bin/sh
# Socket activation (deploy/systemd/byold.socket), driven by systemd's own
# systemd-socket-activate: it holds a Unix socket and a TCP socket and starts
# byold at the first connection, passing both (LISTEN_FDS). byold must take
# them over instead of making its own, serve byolctl on the Unix one and
# workers on the TCP one through a whole run, and leave the socket file to its
# owner when it stops. Then what it must refuse: a non-loopback TCP socket
# without a token, and a passed fd that is not a listening socket.
. "$(dirname "$0")/cluster.inc"

ACT=$(command -v systemd-socket-activate || true)
if [ -z "$ACT" ]; then
	echo "SKIP: socket_activation: systemd-socket-activate is not installed (Debian package systemd)"
	exit 0
fi
SOCK="$T/act.sock"
mkdir -p "$T/state"
"$ACT" -l "$SOCK" -l "$ADDR" "$BYOLD" --state-dir "$T/state" --listen none \
	>>"$T/byold.log" 2>&1 &
ACT_PID=$!
PIDS="$PIDS $ACT_PID"
i=0
until [ -S "$SOCK" ]; do
	i=$((i + 1)); [ $i -lt 100 ] || fail "systemd-socket-activate made no socket"
	sleep 0.1
done
grep -q "started" "$T/byold.log" && fail "byold started before the first connection"

# the first connection starts byold (systemd-socket-activate execs it: same pid)
timeout 30 "$BYOLCTL" --socket "$SOCK" list >/dev/null || fail "byolctl list over $SOCK failed"
grep -q "listening on unix:$SOCK (from systemd, fd 3)" "$T/byold.log" ||
	fail "byold did not take the Unix socket from systemd"
grep -q "listening on $ADDR (from systemd, fd 4)" "$T/byold.log" ||
	fail "byold did not take the TCP socket from systemd"
[ -e "$T/state/byold.sock" ] && fail "byold made its own socket besides the one from systemd"

write_experiment "$T/exp.ini"
start_worker w1 --threads 1
RUN=$(timeout 60 "$BYOLCTL" --socket "$SOCK" submit "$T/exp.ini" --wait | tail -n 1) ||
	fail "the run over the passed sockets did not complete"
echo "run $RUN completed over the sockets systemd passed" >&2

kill -TERM "$ACT_PID"
rc=0; wait "$ACT_PID" || rc=$?
[ $rc = 0 ] || fail "byold exited $rc on SIGTERM"
[ -S "$SOCK" ] || fail "byold deleted the socket file that systemd made"

# refusals: each a start-up failure with its reason, exit 1
WIDE=$(free_port)
"$ACT" -l "0.0.0.0:$WIDE" "$BYOLD" --state-dir "$T/state2" --listen none --socket none \
	>"$T/refuse1.log" 2>&1 &
P=$!
PIDS="$PIDS $P"
i=0
until "$PY" -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 5)' \
	"$WIDE" 2>/dev/null; do
	i=$((i + 1)); [ $i -lt 100 ] || fail "systemd-socket-activate did not listen on 0.0.0.0:$WIDE"
	sleep 0.1
done
rc=0; wait "$P" || rc=$?
[ $rc = 1 ] || fail "byold exited $rc with a non-loopback socket and no token ($(cat "$T/refuse1.log"))"
grep -q "refusing to listen beyond loopback without a token" "$T/refuse1.log" ||
	fail "no reason given for refusing 0.0.0.0: $(cat "$T/refuse1.log")"

rc=0
sh -c 'LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" --state-dir "$1" --listen none 3<"$2"' \
	"$BYOLD" "$T/state3" "$T/exp.ini" >"$T/refuse2.log" 2>&1 || rc=$?
[ $rc = 1 ] || fail "byold exited $rc with a file as its passed socket"
grep -q "fd 3: not a socket" "$T/refuse2.log" ||
	fail "no reason given for a passed fd that is not a socket: $(cat "$T/refuse2.log")"
echo "socket_activation: ok (run $RUN; refusals: 0.0.0.0 without a token, a file as fd 3)"
