#!/bin/sh
# Runs every test binary in $BIN/tests (one process each, under a timeout) and the
# end-to-end scripts in tests/e2e; prints "N passed, M failed, K skipped" last (a
# test that exits 0 after a line starting with SKIP is skipped, with that line).
# TEST_FILTER=substring runs only the tests whose name contains it. Under
# sanitizers (make SANITIZE=1 test) every process a test starts writes its
# reports to the log directory; a test after which any report is there fails,
# even if it exited 0 (a daemon's leak or UB seen only in its own log).
BIN=${BIN:-bin}
TIMEOUT=${TEST_TIMEOUT:-300}
pass=0; fail=0; skip=0; failed=""
sanitizer_reports() {
	for f in "$LOG/$1".asan.* "$LOG/$1".ubsan.*; do
		[ -s "$f" ] && return 0
	done
	return 1
}
run() {
	name=$1; shift
	case "$name" in *"${TEST_FILTER:-}"*) ;; *) return ;; esac
	start=$(date +%s)
	if ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}log_path=$LOG/$name.asan" \
	   UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}log_path=$LOG/$name.ubsan:print_stacktrace=1" \
	   timeout "$TIMEOUT" "$@" >"$LOG/$name.log" 2>&1; then
		if sanitizer_reports "$name"; then
			fail=$((fail + 1)); status=FAIL; failed="$failed $name"
			cat "$LOG/$name".*san.* >>"$LOG/$name.log"
		elif grep -q '^SKIP' "$LOG/$name.log"; then
			skip=$((skip + 1)); status=skip
		else
			pass=$((pass + 1)); status=ok
		fi
	else
		fail=$((fail + 1)); status=FAIL; failed="$failed $name"
		if sanitizer_reports "$name"; then cat "$LOG/$name".*san.* >>"$LOG/$name.log"; fi
	fi
	echo "$status $name ($(( $(date +%s) - start ))s)"
	if [ $status = FAIL ]; then tail -n 30 "$LOG/$name.log" | sed 's/^/    /'; fi
	if [ $status = skip ]; then grep '^SKIP' "$LOG/$name.log" | sed 's/^/    /'; fi
}
LOG=$(mktemp -d)
for t in "$BIN"/tests/test_*; do
	[ -x "$t" ] || continue
	run "$(basename "$t")" "$t"
done
for t in tests/e2e/*.sh; do
	[ -f "$t" ] || continue
	run "e2e_$(basename "$t" .sh)" env BIN="$BIN" sh "$t"
done
echo "logs in $LOG"
[ -z "$failed" ] || echo "failed:$failed"
echo "$pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]
