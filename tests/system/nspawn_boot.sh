#!/bin/sh
# The systemd units booted for real. This machine's own / is booted with
# `systemd-nspawn --boot` as a volatile overlay (the host's / read-only under a
# tmpfs layer that vanishes with the container) with its own network namespace
# (loopback only). `make install DESTDIR=<overlay>` puts byold's binaries, units
# and man pages into it; /etc/byold gets the example byold.conf, a worker.conf
# and a fresh token. Inside, as an operator would:
#
#   1. systemctl enable --now byold; systemctl enable --now byol-worker@w1 @w2
#      (a drop-in shortens WatchdogSec to 3 s against a 6 s heartbeat_ms, so the
#      daemon survives only if its loop pings the watchdog on its own timer);
#   2. byolctl submits a tiny experiment (512 images, 1 epoch) over the Unix
#      socket with the token; it completes; systemctl is-active on all three;
#      byold was never restarted (its watchdog held);
#   3. a longer run; `systemctl stop byold` in the middle: the journal shows
#      byold's STOPPING=1 and a stop at a step boundary, the service exits 0
#      (Result=success), the store says the run is interrupted at a step below
#      its total with a checkpoint of that step, the workers keep running;
#   4. `systemctl start byold` again: the run continues and completes.
#   4b. the workers replaced by byol-worker-local@l1 and @l2 (byold's user, its
#      socket): a run completes, each took tensors through shared memory;
#   5. byold stopped, byold.socket enabled: /run/byold.sock exists and byold is
#      inactive until byolctl (finding that socket by itself) connects; then
#      byold runs on the socket systemd passed, and a run over it completes.
#
# Needs: root; systemd-nspawn (Debian's systemd-container); a tree whose
# /sbin/init is systemd; overlayfs and tmpfs mounts; network namespaces; the
# built programs (make all), scdoc, sqlite3 and Fashion-MNIST. The host need not
# run systemd itself (no machined, no D-Bus: --register=no --keep-unit). Skips
# with a SKIP line when nspawn cannot run here. Bounded by BOOT_LIMIT seconds
# (default 280). Run from the top of the tree: sh tests/system/nspawn_boot.sh
set -eu
cd "$(dirname "$0")/../.."
DATA=/usr/share/datasets/fashion-mnist

skip() {
	echo "SKIP: nspawn_boot: $*"
	exit 0
}
[ "$(id -u)" = 0 ] || skip "needs root (mounts and systemd-nspawn)"
command -v systemd-nspawn >/dev/null 2>&1 ||
	skip "systemd-nspawn is not installed (scripts/deps.sh installs systemd-container)"
case $(readlink -f /sbin/init 2>/dev/null) in
*/systemd) ;;
*) skip "/sbin/init of this tree is not systemd (install systemd-sysv)";;
esac
grep -qw overlay /proc/filesystems || skip "the kernel has no overlayfs"
[ -f "$DATA/train-images-idx3-ubyte.gz" ] || skip "Fashion-MNIST is not installed"
command -v sqlite3 >/dev/null 2>&1 || skip "the sqlite3 CLI is not installed"
for p in bin/byold bin/byol-worker bin/byolctl; do
	[ -x "$p" ] || { echo "FAIL: nspawn_boot: $p is not built (make all)" >&2; exit 1; }
done

T=$(mktemp -d "${TMPDIR:-/tmp}/byold-boot.XXXXXX")
R="$T/root"
NSPAWN=""
LEADER=""
MACHINE="byoldboot$$"

stop_container() {
	[ -n "$NSPAWN" ] || return 0
	if kill -0 "$NSPAWN" 2>/dev/null && [ -n "$LEADER" ]; then
		nsenter -t "$LEADER" -a systemctl poweroff >/dev/null 2>&1 || true
		i=0
		while kill -0 "$NSPAWN" 2>/dev/null && [ $i -lt 100 ]; do
			sleep 0.2; i=$((i + 1))
		done
	fi
	# still there: nspawn's own SIGTERM handling halts the container, a
	# second one ends it
	kill -TERM "$NSPAWN" 2>/dev/null && sleep 2 && kill -TERM "$NSPAWN" 2>/dev/null || true
	wait "$NSPAWN" 2>/dev/null || true
	NSPAWN=""
}

cleanup() {
	rc=$?
	stop_container
	[ -n "${LIMITER:-}" ] && kill "$LIMITER" 2>/dev/null || true
	mountpoint -q "$R" && umount "$R" 2>/dev/null || umount -l "$R" 2>/dev/null || true
	mountpoint -q "$T/ovl" && umount "$T/ovl" 2>/dev/null || umount -l "$T/ovl" 2>/dev/null || true
	rm -rf "/run/systemd/nspawn/propagate/$MACHINE" 2>/dev/null || true
	if [ "${KEEP:-0}" = 1 ]; then echo "kept $T" >&2; else rm -rf "$T"; fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

BOOT_LIMIT=${BOOT_LIMIT:-280}
SELF=$$
(
	i=0
	while [ $i -lt "$BOOT_LIMIT" ]; do
		sleep 1
		kill -0 "$SELF" 2>/dev/null || exit 0
		i=$((i + 1))
	done
	echo "FAIL: nspawn_boot: over the time limit of $BOOT_LIMIT s" >&2
	kill -TERM "$SELF"
) </dev/null >/dev/null 2>&1 &
LIMITER=$!

# in the container: a clean environment, the token for byolctl
C() {
	nsenter -t "$LEADER" -a env -i PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin \
		BYOLD_TOKEN_FILE=/etc/byold/token "$@"
}

fail() {
	echo "FAIL: nspawn_boot: $*" >&2
	if [ -n "$LEADER" ] && kill -0 "$LEADER" 2>/dev/null; then
		C systemctl --no-pager --failed >&2 || true
		C journalctl --no-pager -n 60 -u byold -u 'byol-worker@*' >&2 || true
	fi
	echo "---- console (last 20 lines)" >&2
	tail -n 20 "$T/console.log" >&2 2>/dev/null || true
	exit 1
}

# ---- the volatile root with byold installed ----
mkdir -p "$T/ovl" "$R"
mount -t tmpfs -o mode=0755 byold-boot "$T/ovl" || skip "cannot mount a tmpfs here"
mkdir "$T/ovl/upper" "$T/ovl/work"
mount -t overlay byold-boot -o "lowerdir=/,upperdir=$T/ovl/upper,workdir=$T/ovl/work" "$R" ||
	skip "cannot mount an overlay of / here"
env -u MAKEFLAGS -u MAKELEVEL -u MFLAGS make -s install DESTDIR="$R" PREFIX=/usr/local \
	>"$T/install.log" 2>&1 || { cat "$T/install.log" >&2; fail "make install into the overlay failed"; }
[ -x "$R/usr/local/bin/byold" ] && [ -f "$R/usr/local/lib/systemd/system/byold.service" ] &&
	[ -f "$R/usr/local/lib/systemd/system/byol-worker@.service" ] ||
	fail "make install did not install the programs and the units"

# nothing of a byold this host may run itself: no state, no units of its own
rm -rf "$R/var/lib/byold" "$R/var/lib/private/byold" "$R/etc/byold" \
	"$R/etc/systemd/system/byold.service" "$R/etc/systemd/system/byol-worker@.service" \
	"$R/etc/systemd/system/byold.service.d" "$R/etc/systemd/system/byol-worker@.service.d"
mkdir -p "$R/etc/byold"
umask 077
head -c 32 /dev/urandom | base64 >"$R/etc/byold/token"
umask 022
sed 's/^heartbeat_ms = .*/heartbeat_ms = 6000/' deploy/examples/byold.conf >"$R/etc/byold/byold.conf"
grep -q '^heartbeat_ms = 6000$' "$R/etc/byold/byold.conf" || fail "no heartbeat_ms in the example"
{
	echo "BYOL_COORDINATOR=127.0.0.1:7070"
	echo "BYOL_WORKER_OPTS=--threads 1"
	[ -n "${OPENBLAS_CORETYPE:-}" ] && echo "OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE"
} >"$R/etc/byold/worker.conf"
mkdir -p "$R/etc/systemd/system/byold.service.d"
printf '[Service]\nWatchdogSec=3s\n' >"$R/etc/systemd/system/byold.service.d/watchdog.conf"

cat >"$R/root/tiny.ini" <<'INI'
[experiment]
name = boot-tiny
seed = 7
[data]
train_limit = 512
batch_size = 128
shard_size = 32
[model]
encoder_widths = 64, 32
proj_hidden = 64
proj_dim = 16
pred_hidden = 64
[optim]
epochs = 1
warmup_epochs = 0
[eval]
knn_every_epochs = 1
probe = true
probe_epochs = 2
[checkpoint]
every_steps = 2
keep = 2
INI
LONG_TOTAL=320
sed 's/^name = .*/name = boot-long/; s/^train_limit = .*/train_limit = 4096/;
     s/^epochs = 1$/epochs = 10/; s/^knn_every_epochs = .*/knn_every_epochs = 0/;
     s/^probe = true/probe = false/' "$R/root/tiny.ini" >"$R/root/long.ini"

# ---- boot ----
NSPAWN_ARGS="-D $R -M $MACHINE --register=no --keep-unit --link-journal=no --private-network -q"
# shellcheck disable=SC2086
if ! systemd-nspawn $NSPAWN_ARGS --console=pipe /bin/true </dev/null >"$T/probe.log" 2>&1; then
	skip "systemd-nspawn cannot run a container here: $(head -n 3 "$T/probe.log" | tr '\n' ' ')"
fi
# shellcheck disable=SC2086
systemd-nspawn $NSPAWN_ARGS --console=pipe --boot </dev/null >"$T/console.log" 2>&1 &
NSPAWN=$!
i=0
while [ -z "$LEADER" ]; do
	for p in $(pgrep -P "$NSPAWN" 2>/dev/null); do
		[ "$(cat "/proc/$p/comm" 2>/dev/null)" = systemd ] && LEADER=$p
	done
	[ -n "$LEADER" ] && break
	kill -0 "$NSPAWN" 2>/dev/null || fail "systemd-nspawn --boot exited at once"
	i=$((i + 1)); [ $i -lt 300 ] || fail "no systemd in the container after 30 s"
	sleep 0.1
done
i=0
until [ -S "/proc/$LEADER/root/run/systemd/private" ]; do
	kill -0 "$LEADER" 2>/dev/null || fail "the container's systemd exited"
	i=$((i + 1)); [ $i -lt 300 ] || fail "the container's systemd did not open its socket in 30 s"
	sleep 0.1
done
state=$(C timeout 90 systemctl is-system-running --wait 2>/dev/null || true)
case $state in
running) ;;
degraded) echo "nspawn_boot: the container booted degraded (units of this host that fail there):" >&2
	C systemctl --no-pager --failed --plain --no-legend >&2 || true;;
*) fail "the container did not finish booting: '$state'";;
esac
echo "nspawn_boot: booted ($state), container systemd is pid $LEADER on the host"

# ---- 1. the units, started as the README says ----
C systemctl enable --now byold >"$T/enable.log" 2>&1 || { cat "$T/enable.log" >&2; fail "systemctl enable --now byold"; }
C systemctl enable --now byol-worker@w1 byol-worker@w2 >>"$T/enable.log" 2>&1 ||
	{ cat "$T/enable.log" >&2; fail "systemctl enable --now byol-worker@w1 byol-worker@w2"; }
[ -L "$R/etc/systemd/system/multi-user.target.wants/byold.service" ] ||
	fail "enable did not link byold.service into multi-user.target.wants"
BYOLD_UP=$(date +%s)
MAINPID=$(C systemctl show -P MainPID byold || true)
[ "${MAINPID:-0}" -gt 0 ] || fail "byold.service has no main process"
C journalctl -u byold --no-pager | grep -q "cluster token from /run/credentials/byold.service/token" ||
	fail "byold did not take its token from the credential"

# ---- 2. a tiny experiment with byolctl ----
C byolctl submit /root/tiny.ini >"$T/submit.out" 2>&1 || { cat "$T/submit.out" >&2; fail "byolctl submit"; }
RUN=$(tail -n 1 "$T/submit.out")
case $RUN in ''|*[!0-9]*) fail "no run id from byolctl submit: $(cat "$T/submit.out")";; esac

if [ -x /usr/bin/python3 ]; then PY=/usr/bin/python3; else PY=python3; fi
run_field() { # RUN FIELD: one field of byolctl status RUN --json ("" when none)
	C byolctl status "$1" --json 2>/dev/null |
		"$PY" -c 'import json, sys; print(json.load(sys.stdin).get(sys.argv[1], ""))' "$2" \
		2>/dev/null || true
}
wait_status() { # RUN STATUS SECONDS
	i=0
	while :; do
		s=$(run_field "$1" status)
		[ "$s" = "$2" ] && return 0
		case $s in completed|failed|cancelled) fail "run $1 ended $s, not $2";; esac
		i=$((i + 1)); [ $i -lt $(($3 * 5)) ] || fail "run $1 is '$s' after $3 s, not $2"
		sleep 0.2
	done
}
wait_status "$RUN" completed 120
echo "nspawn_boot: run $RUN (tiny) completed"
for u in byold byol-worker@w1 byol-worker@w2; do
	a=$(C systemctl is-active "$u" || true)
	[ "$a" = active ] || fail "$u is '$a' after the run, not active"
done
# at least three watchdog periods since byold started
while [ $(($(date +%s) - BYOLD_UP)) -lt 10 ]; do sleep 0.5; done
[ "$(C systemctl show -P NRestarts byold)" = 0 ] && [ "$(C systemctl show -P MainPID byold)" = "$MAINPID" ] ||
	fail "byold was restarted (watchdog?): NRestarts=$(C systemctl show -P NRestarts byold)"
C journalctl -u byold --no-pager | grep -q "systemd watchdog of 3000 ms" ||
	fail "byold did not see the 3 s watchdog"
echo "nspawn_boot: byold, byol-worker@w1 and @w2 active; the 3 s watchdog held for $(($(date +%s) - BYOLD_UP)) s"

# ---- 3. systemctl stop byold in the middle of a longer run ----
C byolctl submit /root/long.ini >"$T/submit2.out" 2>&1 || { cat "$T/submit2.out" >&2; fail "byolctl submit (long)"; }
RUN2=$(tail -n 1 "$T/submit2.out")
case $RUN2 in ''|*[!0-9]*) fail "no run id from byolctl submit: $(cat "$T/submit2.out")";; esac
i=0
while :; do
	k=$(run_field "$RUN2" step)
	[ "${k:-0}" -ge 5 ] && break
	i=$((i + 1)); [ $i -lt 600 ] || fail "run $RUN2 did not reach step 5: '$(run_field "$RUN2" status)'"
	sleep 0.1
done
C systemd-analyze log-level debug    # the manager logs each notification it gets
C systemctl stop byold || fail "systemctl stop byold"
C systemd-analyze log-level info
[ "$(C systemctl show -P Result byold)" = success ] && [ "$(C systemctl show -P ExecMainStatus byold)" = 0 ] ||
	fail "byold did not stop cleanly: Result=$(C systemctl show -P Result byold)" \
		"ExecMainStatus=$(C systemctl show -P ExecMainStatus byold)"
C journalctl -u byold --no-pager >"$T/journal.txt"
grep -q "Got notification message from PID $MAINPID (STOPPING=1)" "$T/journal.txt" ||
	fail "the journal shows no STOPPING=1 from byold (pid $MAINPID)"
grep -q "stopping at a step boundary" "$T/journal.txt" || fail "byold did not log its stop"
grep -q "run $RUN2 interrupted" "$T/journal.txt" || fail "byold did not log run $RUN2 interrupted"
db() { C sqlite3 -cmd '.timeout 5000' /var/lib/byold/byold.db "$@"; }
ST=$(db "SELECT status FROM runs WHERE id = $RUN2;" || true)
AT=$(db "SELECT step FROM runs WHERE id = $RUN2;" || true)
CK=$(db "SELECT max(step) FROM checkpoints WHERE run_id = $RUN2;" || true)
[ "$ST" = interrupted ] || fail "run $RUN2 is '$ST' in the store after the stop, not interrupted"
[ "$AT" -gt 0 ] && [ "$AT" -lt $LONG_TOTAL ] || fail "run $RUN2 stopped at step '$AT' of $LONG_TOTAL"
[ "$CK" = "$AT" ] || fail "run $RUN2: latest checkpoint at step '$CK', stopped at step $AT"
for u in byol-worker@w1 byol-worker@w2; do
	a=$(C systemctl is-active "$u" || true)
	[ "$a" = active ] || fail "$u is '$a' after byold stopped, not active"
done
echo "nspawn_boot: systemctl stop byold: STOPPING=1, exit 0, run $RUN2 interrupted at step $AT/$LONG_TOTAL"

# ---- 4. started again, the run continues ----
C systemctl start byold || fail "systemctl start byold (again)"
wait_status "$RUN2" completed 150
echo "nspawn_boot: run $RUN2 resumed at step $AT and completed"

# ---- 4b. workers on byold's machine: its socket, shared memory ----
C systemctl stop byol-worker@w1 byol-worker@w2 || fail "systemctl stop byol-worker@w1 @w2"
C systemctl start byol-worker-local@l1 byol-worker-local@l2 >>"$T/enable.log" 2>&1 ||
	{ cat "$T/enable.log" >&2; fail "systemctl start byol-worker-local@l1 @l2"; }
C byolctl submit /root/tiny.ini --wait >"$T/submit4.out" 2>"$T/submit4.err" ||
	{ cat "$T/submit4.err" >&2; fail "a run served by byol-worker-local@l1 and @l2 did not complete"; }
RUN4=$(head -n 1 "$T/submit4.out")
for u in l1 l2; do
	C journalctl -u "byol-worker-local@$u" --no-pager >"$T/local-$u.txt"
	grep -q "parameters arrive through shared memory" "$T/local-$u.txt" ||
		{ cat "$T/local-$u.txt" >&2; fail "byol-worker-local@$u took no tensors through shared memory"; }
done
n=$(db "SELECT count(*) FROM run_workers WHERE run_id = $RUN4 AND shards > 0 AND worker LIKE '%-l_';" || true)
[ "$n" = 2 ] || fail "run $RUN4: $n of byol-worker-local@l1 and @l2 served it, expected 2"
C systemctl stop byol-worker-local@l1 byol-worker-local@l2 || fail "systemctl stop byol-worker-local@*"
C systemctl start byol-worker@w1 byol-worker@w2 || fail "systemctl start byol-worker@w1 @w2 (again)"
echo "nspawn_boot: run $RUN4 by byol-worker-local@l1 and @l2 completed, tensors through shared memory"

# ---- 5. socket activation: byold.socket holds /run/byold.sock ----
C systemctl stop byold || fail "systemctl stop byold (before socket activation)"
C systemctl enable --now byold.socket >>"$T/enable.log" 2>&1 ||
	{ cat "$T/enable.log" >&2; fail "systemctl enable --now byold.socket"; }
C test -S /run/byold.sock || fail "byold.socket made no /run/byold.sock"
a=$(C systemctl is-active byold || true)
[ "$a" = inactive ] || fail "byold is '$a' before any connection to byold.socket"
# byolctl finds /run/byold.sock by itself; its connection starts byold
[ "$(run_field "$RUN2" status)" = completed ] ||
	fail "byolctl over /run/byold.sock: run $RUN2 is not 'completed'"
a=$(C systemctl is-active byold || true)
[ "$a" = active ] || fail "byold is '$a' after a connection to byold.socket, not active"
C journalctl -u byold --no-pager | grep -q "listening on unix:/run/byold.sock (from systemd" ||
	fail "byold did not take /run/byold.sock from systemd"
C test ! -e /var/lib/byold/byold.sock || fail "byold made its own socket besides byold.socket's"
C byolctl submit /root/tiny.ini --wait >"$T/submit3.out" 2>&1 ||
	{ cat "$T/submit3.out" >&2; fail "a run submitted over byold.socket did not complete"; }
echo "nspawn_boot: byold.socket: byold started at the first connection; a run over it completed"

stop_container
echo "nspawn_boot: ok"
