#!/bin/sh
# soak.sh: `make soak`: the one-host pipeline (the built-in default of
# `disagg up`: reference stages, shm, host memory) under a steady load
# for SOAK_SECONDS (default 600) with random cancels, and its
# transformer killed with SIGKILL and started again every
# SOAK_KILL_EVERY seconds (default 60).  Afterwards every accepted
# request must have ended exactly once (done, failed or cancelled), no
# room or slot may be held, and the surviving daemons' file descriptors
# and resident memory must be flat.  Prints the figures; exits non-zero
# on any leak or lost request.  Not part of `make check`.
set -u
TOP=$(pwd)
DISAGG="$TOP/tui/disagg"
DISAGGD="$TOP/daemon/disaggd"
CLIENT="$TOP/build/tests/soak_client"
SECONDS_TOTAL=${SOAK_SECONDS:-600}
KILL_EVERY=${SOAK_KILL_EVERY:-60}
RATE=${SOAK_RATE:-20}
CANCEL=${SOAK_CANCEL_PERCENT:-10}
RUN=$(mktemp -d "${TMPDIR:-/tmp}/disagg-soak.XXXXXX")
export DISAGG_RUN="$RUN"
unset DISAGG_CONTROLLER
failed=0

say() { printf 'soak: %s\n' "$*"; }
bad() { printf 'soak: FAIL: %s\n' "$*"; failed=1; }

cleanup() {
	"$DISAGG" down --timeout 10 > /dev/null 2>&1
	[ -n "${T0:-}" ] && kill -KILL "$T0" 2> /dev/null
	[ -n "${CPID:-}" ] && kill -KILL "$CPID" 2> /dev/null
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

pid_of() { awk -v n="$1" '$1 == n { print $2 }' "$RUN/pids"; }
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2> /dev/null; }
nfds() { ls "/proc/$1/fd" 2> /dev/null | wc -l | tr -d ' '; }
# shm regions (named PID-START:...) of the daemons this run started.
shm_ours() {
	n=0
	for p in $(cat "$RUN/all.pids"); do
		n=$((n + $(ls /dev/shm 2> /dev/null | grep -c "^$p-")))
	done
	echo "$n"
}

# Poll `cmd` until it succeeds or `secs` pass.
wait_until() {
	secs=$1; shift
	end=$(( $(date +%s) + secs ))
	while ! "$@" > /dev/null 2>&1; do
		[ "$(date +%s)" -ge "$end" ] && return 1
		sleep 0.2
	done
}

# Every instance up, no room held anywhere.
all_idle() {
	"$DISAGG" instances --json | /usr/bin/python3 -c '
import json, sys
rows = json.load(sys.stdin)
rows = rows.get("instances", rows) if isinstance(rows, dict) else rows
ok = len(rows) >= 3 and all(r["state"] == "up" and r["rooms"] == 0 and
    r["incoming"] + r["waiting"] + r["ready"] + r["running"] +
    r["sending"] == 0 for r in rows)
sys.exit(0 if ok else 1)'
}
t0_up() {
	"$DISAGG" instances --json | /usr/bin/python3 -c '
import json, sys
rows = json.load(sys.stdin)
rows = rows.get("instances", rows) if isinstance(rows, dict) else rows
sys.exit(0 if any(r["name"] == "t0" and r["state"] == "up"
    for r in rows) else 1)'
}

"$DISAGG" up > "$RUN/up.out" 2>&1 || { cat "$RUN/up.out"; exit 1; }
say "pipeline up in $RUN (rate $RATE/s, $CANCEL% cancelled," \
    "transformer killed every ${KILL_EVERY}s, ${SECONDS_TOTAL}s)"
EP=$(sed -n 's/^listen *= *//p' "$RUN/up.ini" | head -1)
awk '{ print $2 }' "$RUN/pids" > "$RUN/all.pids"

"$CLIENT" "$EP" "$SECONDS_TOTAL" "$RATE" "$CANCEL" > "$RUN/client.out" \
    2> "$RUN/client.err" &
CPID=$!

# Warm-up before the first samples: allocators and pools settle.
sleep 20
for n in controller e0 d0; do
	p=$(pid_of $n)
	eval "pid_$n=$p rss0_$n=$(rss_kb "$p") fd0_$n=$(nfds "$p")"
done
start=$(date +%s)
next_kill=$((start + KILL_EVERY - 20))
kills=0
while kill -0 "$CPID" 2> /dev/null; do
	sleep 1
	now=$(date +%s)
	# The last 30 s stay calm so that the final checks see a settled
	# pipeline.
	[ "$now" -ge $((start + SECONDS_TOTAL - 50)) ] && continue
	[ "$now" -lt "$next_kill" ] && continue
	next_kill=$((next_kill + KILL_EVERY))
	old=${T0:-$(pid_of t0)}
	kill -KILL "$old" 2> /dev/null
	kills=$((kills + 1))
	"$DISAGGD" -d -f "$RUN/up.ini" -N t0 >> "$RUN/t0.log" 2>&1 &
	T0=$!
	echo "$T0" >> "$RUN/all.pids"
	# `disagg down` stops what RUN/pids names.
	sed "s/^t0 .*/t0 $T0/" "$RUN/pids" > "$RUN/pids.new" &&
	    mv "$RUN/pids.new" "$RUN/pids"
	wait_until 30 t0_up || bad "t0 did not come back after kill $kills"
	say "killed and restarted t0 ($kills)"
done
wait "$CPID"
crc=$?
CPID=
summary=$(cat "$RUN/client.out")
say "client: $summary"
[ "$crc" -eq 0 ] || { bad "requests lost or ended twice"; \
    sed 's/^/soak:   /' "$RUN/client.err" | head -20; }

wait_until 30 all_idle || bad "rooms still held after the run:" \
    "$("$DISAGG" instances)"
for n in controller e0 d0; do
	eval "p=\$pid_$n r0=\$rss0_$n f0=\$fd0_$n"
	r1=$(rss_kb "$p"); f1=$(nfds "$p")
	if [ -z "$r1" ]; then
		bad "$n (pid $p) is gone"
		continue
	fi
	say "$n: RSS ${r0} -> ${r1} KiB, fds $f0 -> $f1"
	[ "$f1" -le $((f0 + 2)) ] || bad "$n leaks file descriptors"
	# Flat: within 20% or 8 MiB of where it stood after warm-up.
	[ "$r1" -le $((r0 + r0 / 5 + 8192)) ] || bad "$n grew"
done
"$DISAGG" down --timeout 20 > /dev/null 2>&1
left=$(shm_ours)
say "/dev/shm regions left by this run's daemons: $left"
[ "$left" -eq 0 ] || bad "shm regions left behind"
[ "$failed" -eq 0 ] && say "passed ($kills transformer kills)" ||
    say "FAILED; logs in $RUN"
exit "$failed"
