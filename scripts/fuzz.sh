#!/bin/sh
# Runs every libFuzzer target (fuzz/, built by `make fuzz`) for SECONDS each on a
# copy of its committed seed corpus, one target after the other, and prints a
# line per target: executions, executions per second, coverage (libFuzzer's
# edges "cov" and features "ft"), corpus size. Fails when any target finds a
# crash, a leak, undefined behaviour or an input slower than the timeout; the
# input that did it is printed (base64) and kept in the work directory.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     default 30 s, every target
#
# Environment: FUZZ_NICE (niceness, default 10), FUZZ_TIMEOUT (seconds one input
# may take, default 10), FUZZ_ARGS (more libFuzzer flags), TMPDIR.
set -eu
cd "$(dirname "$0")/.."

secs=${1:-30}
[ $# -gt 0 ] && shift
targets=${*:-"frame config idx safetensors"}
case $secs in
''|*[!0-9]*) echo "usage: scripts/fuzz.sh [SECONDS] [TARGET...]" >&2; exit 2 ;;
esac

make -s fuzz >/dev/null

work=$(mktemp -d "${TMPDIR:-/tmp}/byol-fuzz.XXXXXX")
keep=0
cleanup() { [ "$keep" = 1 ] || rm -rf "$work"; }
trap cleanup EXIT

# A small quarantine keeps ASan's freed memory recycled (the default 256 MiB
# makes every 64 KiB buffer fresh pages: 3x slower here); leaks are checked.
export ASAN_OPTIONS="${ASAN_OPTIONS:-quarantine_size_mb=32:detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}"

failed=""
printf '%-12s %12s %9s %7s %7s %8s  %s\n' target executions exec/s cov ft corpus result
for t in $targets; do
	bin=bin-fuzz/fuzz_$t
	if [ ! -x "$bin" ] || [ ! -d "fuzz/corpus/$t" ]; then
		echo "fuzz.sh: no target '$t' (have: frame config idx safetensors)" >&2
		exit 2
	fi
	mkdir -p "$work/$t/corpus" "$work/$t/artifacts"
	cp fuzz/corpus/"$t"/* "$work/$t/corpus/"
	dict=""
	[ -f "fuzz/$t.dict" ] && dict="-dict=fuzz/$t.dict"
	rc=0
	# shellcheck disable=SC2086
	nice -n "${FUZZ_NICE:-10}" "$bin" -max_total_time="$secs" -timeout="${FUZZ_TIMEOUT:-10}" \
		-rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$work/$t/artifacts/" \
		$dict ${FUZZ_ARGS:-} "$work/$t/corpus" >"$work/$t/log" 2>&1 || rc=$?
	stat() { sed -n "s/^stat::$1: *//p" "$work/$t/log" | tail -1; }
	last=$(grep -E '^#[0-9]+' "$work/$t/log" | tail -1)
	cov=$(echo "$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
	ft=$(echo "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
	corp=$(echo "$last" | sed -n 's/.* corp: \([0-9]*\/[0-9a-zA-Z]*\).*/\1/p')
	result=ok
	if [ "$rc" != 0 ] || ls "$work/$t/artifacts/"* >/dev/null 2>&1; then
		result="FAILED (exit $rc)"
		failed="$failed $t"
	fi
	printf '%-12s %12s %9s %7s %7s %8s  %s\n' "$t" "$(stat number_of_executed_units)" \
		"$(stat average_exec_per_sec)" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$result"
done

if [ -n "$failed" ]; then
	keep=1
	for t in $failed; do
		echo "---- $t: $work/$t/log" >&2
		grep -E 'ERROR|SUMMARY|check failed|runtime error|Test unit written' "$work/$t/log" \
			| head -20 >&2
		for a in "$work/$t/artifacts/"*; do
			[ -f "$a" ] || continue
			echo "input $a (base64):" >&2
			base64 "$a" | head -c 20000 >&2
			echo >&2
		done
	done
	echo "fuzz.sh: failed:$failed (work directory kept: $work)" >&2
	exit 1
fi
