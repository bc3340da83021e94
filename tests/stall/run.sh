#!/bin/sh
# run.sh: liveness by progress, and a peer that stops reading.
#   - A transformer whose worker makes no progress for stall_ms (one
#     reference step far longer than stall_ms) reports itself unhealthy;
#     `threads` shows the busy worker's progress age; the controller
#     places new work on the other transformer; once the step is over
#     the stalled one is up again and its request ends done.
#   - A transformer frozen with SIGSTOP (it reads neither its sockets nor
#     its completion queue) is declared dead; the requests on it are
#     placed again and end done on the other one; after SIGCONT it
#     drops its stale rooms, registers again and holds nothing.
. tests/lib.sh
scratch
TOP=$(pwd)
DISAGG="$TOP/tui/disagg"
DISAGG_RUN="$T_TMP/run"
export DISAGG_RUN
unset DISAGG_CONTROLLER
R=$DISAGG_RUN
mkdir -p "$R"

cleanup() {
	[ -n "${FROZEN:-}" ] && kill -CONT "$FROZEN" 2> /dev/null
	"$DISAGG" down --timeout 10 > /dev/null 2>&1
	[ -n "${KEEP:-}" ] || rm -rf "$T_TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

{
	cat <<EOF
[controller]
listen = ipc://$R/ctl.sock
publish = ipc://$R/pub.sock
policy = round-robin
dead_after_ms = 1s
heartbeat_ms = 200ms

[fabric]
provider = shm
EOF
	ref_stage encoder e0 "$R"
	ref_stage transformer t0 "$R" "step_ms = 4s" "stall_ms = 1s"
	ref_stage transformer t1 "$R"
	ref_stage decoder d0 "$R" "output_dir = $T_TMP/out"
} > "$T_TMP/topo.ini"
up_or_bail stall "$T_TMP/topo.ini"

inst() { "$DISAGG" instances --json 2> /dev/null; }
state_is() { inst | grep -q "\"name\":\"$1\",[^}]*\"state\":\"$2\""; }
submit() {
	"$DISAGG" submit --json --steps "$1" --frames 1 --height 32 --width 32 |
	    sed -n 's/.*"request":\([0-9]*\).*/\1/p'
}
placed_on() {
	"$DISAGG" status --json "$1" | sed -n 's/.*"transformer":"\([a-z0-9]*\)".*/\1/p'
}
state_of() {
	"$DISAGG" status --json "$1" | sed -n 's/.*"state":"\([a-z0-9]*\)".*/\1/p'
}
is_done() { [ "$(state_of "$1")" = done ]; }

# ---- a worker that makes no progress -----------------------------------
"$DISAGG" drain t1 > /dev/null
slow=$(submit 2)
"$DISAGG" undrain t1 > /dev/null
on_t0() { [ "$(placed_on "$slow")" = t0 ]; }
check "stall: the slow request is placed on t0" wait_for 5 on_t0
check "stall: t0 reports itself unhealthy once its worker is silent past stall_ms" \
    wait_for 10 state_is t0 unhealthy
"$DISAGG" threads t0 > "$T_TMP/threads.out" 2>&1
grep -q 'worker[0-9] .*busy' "$T_TMP/threads.out" ||
    sed 's/^/# /' "$T_TMP/threads.out"
check "stall: threads t0 shows the busy worker" \
    grep -q 'worker[0-9] .*busy' "$T_TMP/threads.out"
a=$(submit 1); b=$(submit 1); c=$(submit 1)
ok_elsewhere() {
	for id in $a $b $c; do
		[ "$(placed_on "$id")" = t1 ] || return 1
	done
}
check "stall: new requests all go to t1 while t0 is unhealthy" \
    wait_for 10 ok_elsewhere
check "stall: once the long step is over t0 is up again" \
    wait_for 20 state_is t0 up
check "stall: the slow request still ends done" wait_for 20 is_done "$slow"

# ---- a transformer frozen mid-run --------------------------------------
FROZEN=$(awk '$1 == "t1" { print $2 }' "$R/pids")
"$DISAGG" drain t0 > /dev/null
ids=""
for i in 1 2 3; do ids="$ids $(submit 1)"; done
kill -STOP "$FROZEN"
"$DISAGG" undrain t0 > /dev/null
check "stall: a frozen transformer is declared dead" \
    wait_for 10 state_is t1 dead
all_done() {
	for id in $ids; do is_done "$id" || return 1; done
}
check "stall: its requests are placed again and end done" wait_for 60 all_done
for id in $ids; do
	is_done "$id" || "$DISAGG" status "$id" | sed 's/^/# /'
done
kill -CONT "$FROZEN"
FROZEN=
check "stall: thawed, it registers again" wait_for 15 state_is t1 up
holds_nothing() { inst | grep -q '"name":"t1",[^}]*"rooms":0'; }
check "stall: and holds no stale room" wait_for 15 holds_nothing
summary stall
