#!/bin/sh
# run.sh: `disagg bench xfer` smoke test: one small size, a few
# transfers, on each provider the project supports on one host; the
# table prints, --json parses, and bad usage or a missing provider give
# the documented exit codes.  Numbers are not judged: the machine may be
# busy.  A few seconds in all.
. tests/lib.sh
scratch
D=${DISAGG:-tui/disagg}

# json_ok FILE PROVIDER: one object, this provider, one row with numbers.
json_ok() {
	python3 -c '
import json, sys
o = json.load(open(sys.argv[1]))
rows = o["rows"]
assert o["provider"] == sys.argv[2], o["provider"]
assert o["chunk"] > 0 and o["inflight"] > 0
assert len(rows) == 1 and rows[0]["size"] == 65536
for k in ("engine_gbps", "engine_us", "bare_gbps", "bare_us", "ratio"):
	assert rows[0][k] > 0, k
' "$1" "$2"
}

for prov in shm "tcp;ofi_rxm"; do
	"$D" bench xfer --provider "$prov" --sizes 64K --iters 8 --json \
	    > "$T_TMP/json" 2> "$T_TMP/err"
	rc=$?
	if [ $rc = 1 ] && grep -q "no libfabric provider" "$T_TMP/err"; then
		skip "bench xfer: provider $prov unavailable"
		continue
	fi
	sed 's/^/# /' "$T_TMP/err"
	check "bench xfer --json runs [$prov]" test $rc = 0
	if command -v python3 > /dev/null; then
		check "bench xfer --json output parses [$prov]" \
		    json_ok "$T_TMP/json" "$prov"
	else
		skip "bench xfer --json output parses [$prov]: no python3"
	fi
	"$D" bench xfer --provider "$prov" --sizes 4K --iters 4 \
	    > "$T_TMP/table" 2>&1
	rc=$?
	[ $rc = 0 ] || sed 's/^/# /' "$T_TMP/table"
	check "bench xfer prints its table [$prov]" \
	    grep -q '^ *4K .*[0-9]' "$T_TMP/table"
done

# exits CODE ARGS...: disagg ARGS exits CODE and says why on stderr.
exits() {
	want=$1
	shift
	"$D" "$@" > /dev/null 2> "$T_TMP/err"
	rc=$?
	[ $rc = "$want" ] && [ -s "$T_TMP/err" ]
}
check "bench xfer: a bad size is a usage error" \
    exits 2 bench xfer --sizes 4K,0
check "bench xfer: an unknown option is a usage error" \
    exits 2 bench xfer --frobnicate
check "bench xfer: a chunk out of the table's range is a usage error" \
    exits 2 bench xfer --chunk 1K
check "bench: an unknown benchmark is a usage error" \
    exits 2 bench nosuch
check "bench xfer: a missing provider exits 1 with its name" \
    exits 1 bench xfer --provider no-such-provider --sizes 4K --iters 1
check "bench xfer: the message names the provider" \
    grep -q "no-such-provider" "$T_TMP/err"

summary bench
