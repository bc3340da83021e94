#!/bin/sh
# run.sh: the harness itself cannot hide a crash.  In a scratch tree it
# runs three groups: one that passes, one that dies on SIGSEGV after a
# passing line, one that exits 3 after a passing line.  The harness must
# count the two as failures, say why, end "3 passed, 2 failed" (the
# passing lines before a failure still count) and exit non-zero.
. tests/lib.sh
scratch
top=$(pwd)

mkdir -p "$T_TMP/tree/tests/fine" "$T_TMP/tree/tests/crash" \
    "$T_TMP/tree/tests/silent"
cp tests/harness.sh tests/lib.sh "$T_TMP/tree/tests/"
: > "$T_TMP/tree/tests/tsan.supp"
printf 'echo "ok - fine: one"\n' > "$T_TMP/tree/tests/fine/run.sh"
printf 'echo "ok - crash: before"\nkill -SEGV $$\n' \
    > "$T_TMP/tree/tests/crash/run.sh"
printf 'echo "ok - silent: before"\nexit 3\n' \
    > "$T_TMP/tree/tests/silent/run.sh"
cd "$T_TMP/tree" && sh tests/harness.sh fine crash silent > "$T_TMP/out" 2>&1
rc=$?
cd "$top"
sed 's/^/# /' "$T_TMP/out"
check "harness: a group dying on a signal is a failure" \
    grep -q '^not ok - crash: died on signal 11' "$T_TMP/out"
check "harness: a group exiting non-zero with no failure listed is a failure" \
    grep -q '^not ok - silent: exited with status 3' "$T_TMP/out"
check "harness: the closing line counts them" \
    grep -q '^3 passed, 2 failed, 0 skipped$' "$T_TMP/out"
check "harness: and it exits non-zero" test "$rc" != 0
summary harness
