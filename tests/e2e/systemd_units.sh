#!/bin/sh
# The systemd units as `make install` writes them: installed into a temporary
# DESTDIR (binaries, units, man pages), every unit must pass
# `systemd-analyze verify` without a single line of output (it exits 0 on an
# unknown key, so any output fails), and byold.service's
# `systemd-analyze security --offline=yes` exposure must be 2.0 or less
# (printed, with byol-worker@.service's beside it). A unit with a typo is
# verified too, to show the check sees what verify prints. Then what the units
# rely on, outside systemd: byold and byol-worker given no --token-file take
# $CREDENTIALS_DIRECTORY/token (LoadCredential=), and a worker whose credential
# holds another token is refused. Skips when systemd-analyze is missing. Run
# from the top of the tree.
set -eu
if ! command -v systemd-analyze >/dev/null 2>&1; then
	echo "SKIP: systemd_units: systemd-analyze is not installed (Debian package systemd)"
	exit 0
fi
MAX_EXPOSURE=2.0
T=$(mktemp -d "${TMPDIR:-/tmp}/byold-units.XXXXXX")
trap 'rm -rf "$T"' EXIT
R="$T/root"
fail() {
	echo "FAIL: systemd_units: $*" >&2
	exit 1
}

env -u MAKEFLAGS -u MAKELEVEL -u MFLAGS make -s install DESTDIR="$R" PREFIX=/usr/local \
	>"$T/install.log" 2>&1 || { cat "$T/install.log" >&2; fail "make install DESTDIR=$R failed"; }
UNITDIR="$R/usr/local/lib/systemd/system"
for u in deploy/systemd/*.service; do
	[ -f "$UNITDIR/$(basename "$u")" ] || fail "make install did not install $u"
	! grep -q '@bindir@' "$UNITDIR/$(basename "$u")" || fail "$u: @bindir@ left in the installed unit"
done
grep -q '^ExecStart=/usr/local/bin/byold ' "$UNITDIR/byold.service" ||
	fail "the installed byold.service does not run /usr/local/bin/byold"

# --root= looks up every unit in the tree, sysinit.target and the rest too
mkdir -p "$R/usr/lib/systemd"
cp -a /lib/systemd/system "$R/usr/lib/systemd/" || fail "cannot copy /lib/systemd/system"
VERIFY_OPTS=""
if ! command -v man >/dev/null 2>&1; then
	echo "NOTE: systemd_units: man is not installed: Documentation= is not checked"
	VERIFY_OPTS="--man=no"
fi
verify() { # UNIT: verify's output, its exit status appended when not 0
	rc=0
	# shellcheck disable=SC2086
	MANPATH="$R/usr/local/share/man" systemd-analyze verify $VERIFY_OPTS --root="$R" "$1" \
		>"$T/verify.out" 2>&1 || rc=$?
	[ $rc = 0 ] || echo "(exit status $rc)" >>"$T/verify.out"
}

n=0
for f in "$UNITDIR"/*.service "$UNITDIR"/*.socket; do
	unit=$(basename "$f")
	case $unit in *@.service) unit="${unit%@.service}@test.service";; esac
	verify "$unit"
	if [ -s "$T/verify.out" ]; then
		cat "$T/verify.out" >&2
		fail "systemd-analyze verify $unit printed the lines above"
	fi
	echo "verify $unit: clean"
	n=$((n + 1))
done
[ $n -ge 3 ] || fail "only $n units installed"

# the check itself: a typo must show
sed 's/^WatchdogSec=/WatchdogSecs=/' "$UNITDIR/byold.service" >"$UNITDIR/byold-typo.service"
verify byold-typo.service
grep -q "Unknown key 'WatchdogSecs'" "$T/verify.out" ||
	fail "verify did not report a typo in a unit: $(cat "$T/verify.out")"
rm -f "$UNITDIR/byold-typo.service"

exposure() { # UNIT: the overall exposure figure
	systemd-analyze security --offline=yes --root="$R" "$1" >"$T/security.out" 2>&1 ||
		{ cat "$T/security.out" >&2; fail "systemd-analyze security $1 failed"; }
	sed -n 's/.*Overall exposure level for [^:]*: \([0-9][0-9.]*\).*/\1/p' "$T/security.out"
}
E=$(exposure byold.service)
[ -n "$E" ] || { cat "$T/security.out" >&2; fail "no exposure figure for byold.service"; }
awk -v e="$E" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(e <= m) }' || {
	grep '✗' "$T/security.out" >&2 || true
	fail "byold.service exposure $E is above $MAX_EXPOSURE"
}
W=$(exposure byol-worker@test.service)
echo "security exposure: byold.service $E (limit $MAX_EXPOSURE), byol-worker@.service ${W:-?}"

# ---- the credential the units pass: $CREDENTIALS_DIRECTORY/token ----
BIN=${BIN:-bin}
for p in "$BIN/byold" "$BIN/byol-worker"; do
	[ -x "$p" ] || fail "$p is not built"
done
PIDS=""
trap 'for p in $PIDS; do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$T"' EXIT
mkdir -p "$T/cred" "$T/wrong" "$T/state"
(umask 077; head -c 32 /dev/urandom | base64 >"$T/cred/token"; head -c 32 /dev/urandom | base64 >"$T/wrong/token")
CREDENTIALS_DIRECTORY="$T/cred" "$BIN/byold" --state-dir "$T/state" --listen 127.0.0.1:0 \
	--socket none >"$T/byold.log" 2>&1 &
DPID=$!
PIDS="$DPID"
wait_log() { # FILE PATTERN WHAT
	i=0
	until grep -q "$2" "$1" 2>/dev/null; do
		i=$((i + 1))
		[ $i -lt 100 ] || { cat "$1" >&2; fail "$3"; }
		sleep 0.1
	done
}
wait_log "$T/byold.log" "token required" "byold did not start with the credential's token"
grep -q "cluster token from $T/cred/token" "$T/byold.log" || fail "byold did not name the credential"
PORT=$(sed -n 's/.*listening on 127.0.0.1:0 (port \([0-9]*\)).*/\1/p' "$T/byold.log")
[ -n "$PORT" ] || fail "no port in byold's log"
CREDENTIALS_DIRECTORY="$T/cred" "$BIN/byol-worker" --coordinator "127.0.0.1:$PORT" --name cred \
	--threads 1 >"$T/cred.log" 2>&1 &
PIDS="$PIDS $!"
CREDENTIALS_DIRECTORY="$T/wrong" "$BIN/byol-worker" --coordinator "127.0.0.1:$PORT" --name wrong \
	--threads 1 >"$T/wrong.log" 2>&1 &
PIDS="$PIDS $!"
wait_log "$T/byold.log" "worker cred joined" "the worker with the credential did not join"
wait_log "$T/byold.log" "wrong token" "byold did not refuse the worker with a wrong credential"
! grep -q "worker wrong joined" "$T/byold.log" || fail "the worker with a wrong token joined"
kill -TERM "$DPID"
rc=0; wait "$DPID" || rc=$?
[ $rc = 0 ] || fail "byold exited $rc on SIGTERM"
echo "credentials: byold and byol-worker use \$CREDENTIALS_DIRECTORY/token; a wrong one is refused"
echo "systemd_units: ok"
