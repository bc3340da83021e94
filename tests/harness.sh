#!/bin/sh
# harness.sh: run every test group and print one closing line,
# "N passed, N failed, N skipped".  Each group prints TAP lines
# ("ok - name", "not ok - name", "ok - name # SKIP"); this counts them.
#
#   sh tests/harness.sh [group ...]     groups: unit, each tests/NAME/run.sh, fuzz, man
#   MEMCHECK=1 runs the unit tests under valgrind.
set -u
B=${B:-build}
export B
# Only read by a SANITIZE=thread build: see the file for why.  The
# transfer tests fork a peer, and a parent may still hold an engine's
# thread left stuck in a provider on purpose (tests/xfer, "killed"):
# TSan then refuses the child's threads by default (die_after_fork),
# and the peer never came up.
TSAN_OPTIONS="suppressions=$(pwd)/tests/tsan.supp die_after_fork=0${TSAN_OPTIONS:+ $TSAN_OPTIONS}"
export TSAN_OPTIONS
# Every folder of tests/ with a run.sh is a group, in this order.
all="unit"
for g in harness config daemon xfer pipeline python up autoscale admin console curve hostile failover zerocopy stall wedge partition bench install; do
	[ -f "tests/$g/run.sh" ] && all="$all $g"
done
groups=${*:-$all fuzz man}
log=$(mktemp "${TMPDIR:-/tmp}/disagg-harness.XXXXXX")
trap 'rm -f "$log" "$log.one" "$log.rc" "$log.group"' EXIT

run_unit() {
	for t in "$B"/tests/test_*; do
		[ -x "$t" ] || continue
		name=$(basename "$t")
		if [ "${MEMCHECK:-0}" = 1 ]; then
			set -- valgrind -q --leak-check=full --show-leak-kinds=definite,indirect \
			    --errors-for-leak-kinds=definite,indirect \
			    --error-exitcode=99 --suppressions=tests/valgrind.supp "$t"
		else
			set -- "$t"
		fi
		CMOCKA_MESSAGE_OUTPUT=TAP "$@" > "$log.one" 2>&1
		rc=$?
		# cmocka's TAP: "ok 1 - t", "not ok 2 - t", "not ok 3 # SKIP t".
		sed -e "s/^not ok [0-9]* # SKIP \(.*\)/ok - $name: \1 # SKIP/" \
		    -e "s/^\(\(not \)*ok\) [0-9]* - /\1 - $name: /" "$log.one"
		if [ $rc != 0 ] && ! grep -q '^not ok' "$log.one"; then
			echo "not ok - $name: exited with status $rc"
		fi
	done
}

# A group that dies on a signal, or exits non-zero (77: skipped) with no
# failure of its own to show for it, is a failure: a crash must never
# leave the run green.
run_group() {
	g=$1
	shift
	{ "$@" 2>&1; echo $? > "$log.rc"; } | tee "$log.group"
	rc=$(cat "$log.rc" 2> /dev/null || echo 1)
	if [ "$rc" -gt 128 ]; then
		echo "not ok - $g: died on signal $((rc - 128))"
	elif [ "$rc" != 0 ] && [ "$rc" != 77 ] &&
	    ! grep -q '^not ok' "$log.group"; then
		echo "not ok - $g: exited with status $rc"
	fi
}

for g in $groups; do
	echo "== $g"
	case $g in
	unit)   run_unit ;;
	fuzz)   run_group fuzz sh tests/fuzz/replay.sh ;;
	man)    run_group man sh tests/man/check.sh ;;
	*)      if [ -f "tests/$g/run.sh" ]; then
			run_group "$g" sh "tests/$g/run.sh"
		else
			echo "not ok - unknown test group '$g'"
		fi ;;
	esac
done 2>&1 | tee "$log"

pass=$(grep -c '^ok - ' "$log" | tr -d ' ')
skipped=$(grep -c '^ok - .*# SKIP' "$log" | tr -d ' ')
failed=$(grep -c '^not ok' "$log" | tr -d ' ')
pass=$((pass - skipped))
if [ "$failed" != 0 ]; then
	echo
	echo "failures:"
	grep '^not ok' "$log"
fi
echo "$pass passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ] && [ "$pass" -gt 0 ]
