#!/bin/sh
# Run every fuzz target for SECONDS each, one after the other, on a copy of
# its seed corpus (fuzz/corpus/TARGET/, left untouched). Builds first
# (fuzz/build.sh, incremental). Prints the executions, coverage and
# corpus size reached per target; exits non-zero if any target crashed,
# leaked, timed out or failed a check. A crashing input is kept in
# fuzz/build/artifacts/ with the target's log.
#
# Usage: fuzz/run.sh SECONDS [target...]
# One process per target, one at a time (-jobs=1 -workers=1): the
# machine is shared.
set -u

here=$(cd "$(dirname "$0")" && pwd)
build=${FUZZ_BUILD_DIR:-$here/build}
secs=${1:-60}
shift 2>/dev/null || true
case $secs in
''|*[!0-9]*) echo "usage: fuzz/run.sh SECONDS [target...]" >&2; exit 2 ;;
esac

if [ $# -gt 0 ]; then
	targets=$*
else
	targets=$(cd "$here" && ls fuzz_*.c | sed -e 's/\.c$//' \
	    -e '/^fuzz_guard$/d')
fi
# shellcheck disable=SC2086
"$here/build.sh" $targets || exit 1

work=$(mktemp -d "${TMPDIR:-/tmp}/tardy-fuzz-run.XXXXXX")
trap 'rm -rf "$work"' EXIT
artifacts=$build/artifacts
mkdir -p "$artifacts"

status=0
summary=
for t in $targets; do
	mkdir -p "$work/$t"
	cp -R "$here/corpus/$t" "$work/$t/corpus"
	set -- -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 \
	    -jobs=1 -workers=1 -print_final_stats=1 \
	    -artifact_prefix="$artifacts/$t-"
	[ -f "$here/$t.dict" ] && set -- "$@" -dict="$here/$t.dict"
	case $t in
	fuzz_addr)	set -- "$@" -max_len=512 ;;
	fuzz_config)	set -- "$@" -max_len=4096 ;;
	fuzz_toxic_attrs) set -- "$@" -max_len=2048 ;;
	fuzz_datapath)	set -- "$@" -max_len=1024 -len_control=20 ;;
	fuzz_api)	set -- "$@" -max_len=4096 ;;
	esac
	echo "=== $t: $secs s"
	# A hard stop well past -max_total_time, should the target hang.
	(cd "$work/$t" && exec timeout -k 10 $((secs + 120)) \
	    "$build/$t" "$@" corpus >run.log 2>&1)
	rc=$?
	log=$work/$t/fuzz-0.log
	[ -f "$log" ] || log=$work/$t/run.log
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" |
	    tail -1)
	last=$(grep -a -E '^#[0-9]+.*cov: ' "$log" | tail -1)
	cov=$(echo "$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
	ft=$(echo "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
	corp=$(echo "$last" | sed -n 's/.* corp: \([^ ]*\).*/\1/p')
	if [ -z "$execs" ]; then
		execs=$(echo "$last" | sed -n 's/^#\([0-9]*\).*/\1/p')
	fi
	if [ "$rc" -ne 0 ] || grep -a -q -E '^(==[0-9]+==ERROR|SUMMARY: )' \
	    "$log"; then
		status=1
		result=FAILED
		cp "$log" "$artifacts/$t.log"
		grep -a -E -B2 -A30 '==FUZZ==|==[0-9]+==ERROR|runtime error' \
		    "$log" | head -60
		echo "$t: FAILED (exit $rc); log: $artifacts/$t.log"
		ls "$artifacts/$t-"* 2>/dev/null | sed 's/^/  input: /'
	else
		result=ok
	fi
	line=$(printf '%-18s %12s execs  cov %-5s ft %-6s corpus %-12s %s' \
	    "$t" "${execs:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$result")
	echo "$line"
	summary="$summary$line
"
done
echo "=== fuzzing, $secs s per target"
printf '%s' "$summary"
exit $status
