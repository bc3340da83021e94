#!/bin/sh
# run.sh: the Python tests (pytest, with Debian's /usr/bin/python3 only):
# the client package against real daemons, Python stages inside the
# daemons, the tinywan model and its pipeline.  Each pytest outcome
# becomes a TAP line; a pytest that dies or cannot start fails the group.
#
#   B=build sh tests/python/run.sh [pytest args]
PY=${PYTHON:-/usr/bin/python3}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/disagg-pytest.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

if ! "$PY" -c 'import pytest, numpy, zmq, msgpack' 2> "$tmp/err"; then
	sed 's/^/# /' "$tmp/err"
	echo "not ok - python: $PY lacks pytest, numpy, zmq or msgpack (make deps)"
	exit 1
fi
# A hang must not hang 'make check': every wait inside has a deadline,
# and this bounds the whole run too.
limit=""
command -v timeout > /dev/null 2>&1 && limit="timeout -k 10 1500"
PYTHONPATH="$(pwd)/lib/python${PYTHONPATH:+:$PYTHONPATH}" \
PYTHONDONTWRITEBYTECODE=1 \
    $limit "$PY" -m pytest -p no:cacheprovider -rA -q tests/python "$@" \
    > "$tmp/out" 2>&1
rc=$?
# Failures in full, then one TAP line per test from the summary.
grep -q '^FAILED\|^ERROR' "$tmp/out" && sed 's/^/# /' "$tmp/out"
sed -n -e 's/^PASSED tests\/python\/\(.*\)$/ok - python: \1/p' \
    -e 's/^SKIPPED \[[0-9]*\] tests\/python\/\([^:]*:[0-9]*\): \(.*\)$/ok - python: \1 # SKIP \2/p' \
    -e 's/^FAILED tests\/python\/\([^ ]*\).*$/not ok - python: \1/p' \
    -e 's/^ERROR tests\/python\/\([^ ]*\).*$/not ok - python: \1 (error)/p' \
    "$tmp/out"
tail -n 1 "$tmp/out" | sed 's/^/# /'
case $rc in
0) ;;
1) grep -q '^FAILED\|^ERROR' "$tmp/out" ||
	echo "not ok - python: pytest failed with no failing test" ;;
124) echo "not ok - python: pytest ran past 1500 s and was stopped" ;;
*) echo "not ok - python: pytest exited with status $rc" ;;
esac
[ $rc = 0 ]
