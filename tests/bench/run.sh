#!/bin/sh
# run.sh: `disagg bench xfer` smoke test: one small size, a few
# transfers, on each provider the project supports on one host; the
# table prints, --json parses, and bad usage or a missing provider give
# the documented exit codes.  Then `disagg bench rooms` with 300 rooms:
# it completes and prints its figures.  Numbers are not judged: the
# machine may be busy.  Then `disagg bench fleet`, two policies for a
# few seconds each: a row per policy whose counts add up, the same in
# its JSON, and its usage errors.  Then idle_cpu.sh: an idle pipeline's
# CPU over 60 s, the window the limits are set for (over 10 s a start-up's
# last work weighs six times as much).  Some two minutes in all.
. tests/lib.sh
scratch
D=${DISAGG:-tui/disagg}

# json_ok FILE PROVIDER: one object, this provider, one row with numbers.
json_ok() {
	/usr/bin/python3 -c '
import json, sys
o = json.load(open(sys.argv[1]))
rows = o["rows"]
assert o["provider"] == sys.argv[2], o["provider"]
assert o["chunk"] > 0 and o["inflight"] > 0
assert o["rounds"] == 2, o.get("rounds")
assert len(rows) == 1 and rows[0]["size"] == 65536
# the counts hold every round: 2 x 8 transfers, 2 x 8 samples
assert rows[0]["engine_transfers"] == 16, rows[0]["engine_transfers"]
assert rows[0]["bare_samples"] == 16, rows[0]["bare_samples"]
for k in ("engine_gbps", "engine_us", "bare_gbps", "bare_us", "ratio"):
	assert rows[0][k] > 0, k
' "$1" "$2"
}

for prov in shm "tcp;ofi_rxm"; do
	"$D" bench xfer --provider "$prov" --sizes 64K --iters 8 --rounds 2 \
	    --json \
	    > "$T_TMP/json" 2> "$T_TMP/err"
	rc=$?
	if [ $rc = 1 ] && grep -q "no libfabric provider" "$T_TMP/err"; then
		skip "bench xfer: provider $prov unavailable"
		continue
	fi
	sed 's/^/# /' "$T_TMP/err"
	check "bench xfer --json runs [$prov]" test $rc = 0
	if command -v /usr/bin/python3 > /dev/null; then
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
check "bench xfer: --rounds 0 is a usage error" \
    exits 2 bench xfer --rounds 0
check "bench: an unknown benchmark is a usage error" \
    exits 2 bench nosuch
check "bench xfer: a missing provider exits 1 with its name" \
    exits 1 bench xfer --provider no-such-provider --sizes 4K --iters 1
check "bench xfer: the message names the provider" \
    grep -q "no-such-provider" "$T_TMP/err"

check "bench rooms: --rooms 0 is a usage error" \
    exits 2 bench rooms --rooms 0

# bench rooms, small: its own pipeline in a run folder under our scratch
# (kept by -d, removed with the scratch), every figure printed, all 300
# rooms failed over (300 is below any batch limit of the failover).
"$D" bench rooms --rooms 300 -d "$T_TMP/rooms" > "$T_TMP/rooms.out" 2>&1
rc=$?
[ $rc = 0 ] || sed 's/^/# /' "$T_TMP/rooms.out"
check "bench rooms --rooms 300 completes" test $rc = 0
# figure LABEL: the table's row LABEL has a number in both columns.
figure() {
	grep -q "^  $1 *[0-9][0-9.]* *[0-9][0-9.]*\$" "$T_TMP/rooms.out"
}
for row in "t0 threads" "t0 RSS, MiB" "controller RSS, MiB" \
    "\`threads t0\` RTT p50, ms" "\`threads t0\` RTT p99, ms"; do
	check "bench rooms prints $row" figure "$row"
done
check "bench rooms prints the memory per room" \
    grep -q "per room .*: t0 [0-9.]* KiB" "$T_TMP/rooms.out"
check "bench rooms holds all 300 rooms" \
    grep -q "held: 300 of 300" "$T_TMP/rooms.out"
check "bench rooms prints the failover" \
    grep -q "re-dispatched to t1 *300 of 300, all by [0-9.]* s" \
    "$T_TMP/rooms.out"
check "bench rooms prints its closing line" \
    grep -q "^disagg bench rooms: ok: 300 rooms" "$T_TMP/rooms.out"
check "bench rooms leaves no daemon running" \
    sh -c '! ps -eo args | grep -q "^[^ ]*disaggd .*$1"' _ "$T_TMP/rooms"

# bench fleet: usage errors first, they start nothing.
check "bench fleet: --load 0 is a usage error" \
    exits 2 bench fleet --load 0
check "bench fleet: a mix without shares is a usage error" \
    exits 2 bench fleet --mix 5
check "bench fleet: --every without --burst is a usage error" \
    exits 2 bench fleet --every 100
check "bench fleet: an unknown policy is a usage error" \
    exits 2 bench fleet --policies round-robin,no-such-policy
check "bench fleet: the message names the policy" \
    grep -q "no-such-policy" "$T_TMP/err"
check "bench fleet: an unexpected argument is a usage error" \
    exits 2 bench fleet extra

# A small fleet run: two policies, a tiny mix at a light load, so that
# two shared cores keep up.  Counts must add up whatever the machine.
FLEET="--duration 2.5 --load 0.3 --mix 2:0.5,4:0.5 --seed 7"
"$D" bench fleet $FLEET --policies round-robin,lightx2v \
    -d "$T_TMP/fleet" > "$T_TMP/fleet.out" 2> "$T_TMP/fleet.err"
rc=$?
[ $rc = 0 ] || sed 's/^/# /' "$T_TMP/fleet.out" "$T_TMP/fleet.err"
check "bench fleet completes" test $rc = 0
# row POLICY: its row, whose offered = accepted + refused and accepted =
# done within deadline + late + failed, and something was offered.
row() {
	awk -v p="$1" '$1 == p && $2 ~ /^[0-9]+$/ { n++
		if ($2 > 0 && $2 == $3 + $4 && $3 == $5 + $6 + $7) ok++ }
		END { exit !(n == 1 && ok == 1) }' "$T_TMP/fleet.out"
}
check "bench fleet: a consistent row for round-robin" row round-robin
check "bench fleet: a consistent row for the lightx2v baseline" row lightx2v
check "bench fleet leaves no daemon running" \
    sh -c '! ps -eo args | grep -q "^[^ ]*disaggd .*$1"' _ "$T_TMP/fleet"

# fleet_json FILE POLICY...: the policies in order, each offered the
# plan's every arrival, counts that add up by code and by reason, and
# ratios and percentiles where they belong (null without a done request).
fleet_json() {
	/usr/bin/python3 -c '
import json, sys
o = json.load(open(sys.argv[1]))
rows = o["policies"]
assert [r["policy"] for r in rows] == sys.argv[2:], rows
assert o["burst"] == 4 and o["every_ms"] > 0 and o["arrivals"] % 4 == 0
assert o["arrivals"] > 0 and abs(sum(m["share"] for m in o["mix"]) - 1) < 1e-9
for r in rows:
	assert r["error"] is None, r["error"]
	assert r["offered"] == o["arrivals"], r
	assert r["offered"] == r["accepted"] + r["refused"], r
	assert r["accepted"] == r["done_in_deadline"] + r["done_late"] + r["failed"], r
	assert sum(r["refused_by_code"].values()) == r["refused"], r
	assert sum(r["failed_by_reason"].values()) == r["failed"], r
	assert abs(r["slo_attainment"] - r["done_in_deadline"] / r["offered"]) < 1e-3
	assert 0 <= r["deadline_failed_of_accepted"] <= 1
	if r["done_in_deadline"] + r["done_late"]:
		assert 0 < r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"], r
	else:
		assert r["p50_ms"] is None, r
' "$@"
}
# In bursts this time: --every follows from --load.
"$D" bench fleet $FLEET --burst 4 --policies p2c --json -d "$T_TMP/fleet-json" \
    > "$T_TMP/fleet.json" 2> "$T_TMP/fleet.err"
rc=$?
[ $rc = 0 ] || sed 's/^/# /' "$T_TMP/fleet.json" "$T_TMP/fleet.err"
check "bench fleet --json completes" test $rc = 0
check "bench fleet --json parses, and its counts add up" \
    fleet_json "$T_TMP/fleet.json" p2c

# An idle pipeline's CPU, then a request through it: its own lines.
sh tests/bench/idle_cpu.sh 60

summary bench
