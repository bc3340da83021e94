# lib.sh: helpers shared by the shell tests: TAP lines, a closing summary,
# and waiting on a condition with a deadline instead of a bare sleep.

T_PASS=0
T_FAIL=0
T_SKIP=0

ok()   { T_PASS=$((T_PASS + 1)); echo "ok - $*"; }
fail() { T_FAIL=$((T_FAIL + 1)); echo "not ok - $*"; }
skip() { T_SKIP=$((T_SKIP + 1)); echo "ok - $* # SKIP"; }

# check NAME CMD...: one test that passes when CMD succeeds.
check() {
	name=$1
	shift
	if "$@"; then ok "$name"; else fail "$name"; fi
}

# summary GROUP: the closing line; exit status says whether all passed.
summary() {
	echo "$1: $T_PASS passed, $T_FAIL failed, $T_SKIP skipped"
	[ "$T_FAIL" = 0 ]
}

# wait_for SECONDS CMD...: poll CMD until it succeeds; 1 at the deadline.
wait_for() {
	limit=$1
	shift
	end=$(( $(date +%s%N) / 1000000 + limit * 1000 ))
	while ! "$@"; do
		[ $(( $(date +%s%N) / 1000000 )) -ge $end ] && return 1
		sleep 0.02 # poll interval; the deadline above bounds the wait
	done
	return 0
}

# A private scratch folder, removed on exit.
scratch() {
	T_TMP=$(mktemp -d "${TMPDIR:-/tmp}/disagg-test.XXXXXX")
	trap 'rm -rf "$T_TMP"' EXIT
}

# up_or_bail GROUP FILE: start the topology FILE with `disagg up` (the
# test sets DISAGG); on failure show why, end the group and exit.
up_or_bail() {
	if "$DISAGG" up -f "$2" --timeout 20 > "$T_TMP/up.out" 2>&1; then
		ok "$1: the pipeline starts"
		return 0
	fi
	sed 's/^/# /' "$T_TMP/up.out"
	fail "$1: the pipeline starts"
	summary "$1"
	exit 1
}

# ref_stage KIND NAME DIR [LINE...]: a test topology's section for a
# reference stage (ref-KIND) named NAME, its peer socket in DIR, a 64M
# pool, then each LINE ("key = value") as it is.
ref_stage() {
	printf '\n[%s %s]\npeer = ipc://%s/%s.sock\nstage = ref-%s\npool = 64M\n' \
	    "$1" "$2" "$3" "$2" "$1"
	shift 3
	for _rs_line in "$@"; do
		printf '%s\n' "$_rs_line"
	done
}
