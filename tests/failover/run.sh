#!/bin/sh
# run.sh: SIGKILL of each role in the phase that hurts most, on a real
# one-host pipeline of reference stages with a controller journal:
#   - the encoder while it computes, before its transfer;
#   - the decoder while it decodes (its half-written file is collected
#     when it starts again);
#   - the controller mid-run: it replays its journal, the stages drop
#     their rooms and register again, and every accepted request still
#     ends done, which a reconnecting client learns with `status`.
# (A transformer killed mid-transfer is tests/pipeline's kill case.)
# Afterwards no daemon holds a room and every slot is free.
. tests/lib.sh
scratch
TOP=$(pwd)
DISAGG="$TOP/tui/disagg"
DISAGGD="$TOP/daemon/disaggd"
DISAGG_RUN="$T_TMP/run"
export DISAGG_RUN
unset DISAGG_CONTROLLER
R=$DISAGG_RUN
mkdir -p "$R"

cleanup() {
	"$DISAGG" down --timeout 10 > /dev/null 2>&1
	for p in $(cat "$T_TMP/started" 2> /dev/null); do
		kill -KILL "$p" 2> /dev/null
	done
	[ -n "${KEEP:-}" ] || rm -rf "$T_TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

{
	cat <<EOF
[controller]
listen = ipc://$R/ctl.sock
publish = ipc://$R/pub.sock
journal = $T_TMP/controller.journal
dead_after_ms = 1500ms
# Frequent reports: the checks below watch a worker busy for 600 ms.
heartbeat_ms = 100ms

[fabric]
provider = shm
EOF
	ref_stage encoder e0 "$R" "step_ms = 600ms"
	ref_stage transformer t0 "$R" "step_ms = 20ms"
	ref_stage decoder d0 "$R" "step_ms = 600ms" "output_dir = $T_TMP/out"
} > "$T_TMP/topo.ini"
up_or_bail failover "$T_TMP/topo.ini"
awk '{ print $2 }' "$R/pids" > "$T_TMP/started"

pid_of() { awk -v n="$1" '$1 == n { print $2 }' "$R/pids"; }
restart() {
	setsid "$DISAGGD" -d -f "$T_TMP/topo.ini" -N "$1" >> "$R/$1.log" 2>&1 \
	    < /dev/null &
	echo $! >> "$T_TMP/started"
	sed "s/^$1 .*/$1 $!/" "$R/pids" > "$R/pids.new" && mv "$R/pids.new" "$R/pids"
}
inst() { "$DISAGG" instances --json 2> /dev/null; }
up_again() { inst | grep -q "\"name\":\"$1\",[^}]*\"state\":\"up\""; }
running_on() { inst | grep -q "\"name\":\"$1\",[^}]*\"running\":[1-9]"; }
idle() {
	j=$(inst) || return 1
	[ "$(echo "$j" | grep -o '"rooms":0' | wc -l)" = 3 ] &&
	    ! echo "$j" | grep -q '"state":"\(dead\|draining\)'
}
free_total() {
	inst | grep -o '"free_slots":[0-9]*' | cut -d: -f2 |
	    awk '{ s += $1 } END { print s + 0 }'
}
wait_for 20 idle
slots0=$(free_total)

# submit N: N request ids, one a line, in $T_TMP/ids
submit() {
	: > "$T_TMP/ids"
	i=0
	while [ $i -lt "$1" ]; do
		"$DISAGG" submit --json --steps 10 --frames 1 --height 32 \
		    --width 32 --seed $i | sed -n 's/.*"request":\([0-9]*\).*/\1/p' \
		    >> "$T_TMP/ids"
		i=$((i + 1))
	done
}
# Every id has ended; prints how many ended done.
ended() {
	n=0
	for id in $(cat "$T_TMP/ids"); do
		s=$("$DISAGG" status --json "$id" 2> /dev/null |
		    sed -n 's/.*"state":"\([a-z0-9]*\)".*/\1/p')
		case $s in
		done) n=$((n + 1)) ;;
		failed|cancelled) ;;
		*) return 1 ;;
		esac
	done
	echo "$n" > "$T_TMP/ndone"
}
all_done() { ended && [ "$(cat "$T_TMP/ndone")" = "$(wc -l < "$T_TMP/ids" | tr -d ' ')" ]; }
slots_back() { [ "$(free_total)" = "$slots0" ]; }
settled() { idle && slots_back; }

# ---- the encoder, computing, before its transfer -----------------------
submit 4
check "failover: requests reach the encoder's worker" wait_for 10 running_on e0
kill -KILL "$(pid_of e0)"
restart e0
check "failover: the encoder comes back" wait_for 20 up_again e0
check "failover: after an encoder kill every request ends, none hangs" \
    wait_for 60 ended
check "failover: ... and all of them done, re-dispatched ($(cat "$T_TMP/ndone" 2> /dev/null) of 4)" \
    all_done
check "failover: no room held and every slot free after the encoder kill" \
    wait_for 20 settled

# ---- the decoder, mid-decode -------------------------------------------
submit 4
check "failover: requests reach the decoder's worker" wait_for 30 running_on d0
kill -KILL "$(pid_of d0)"
restart d0
check "failover: the decoder comes back" wait_for 20 up_again d0
check "failover: after a decoder kill every request ends done" \
    wait_for 60 all_done
check "failover: the killed decoder's half-written file is gone" \
    sh -c "! ls -a '$T_TMP/out' | grep -q '\\.tmp\$'"
check "failover: no room held and every slot free after the decoder kill" \
    wait_for 20 settled

# ---- the controller, mid-run, with its journal -------------------------
submit 6
check "failover: requests are in flight" wait_for 10 running_on e0
kill -KILL "$(pid_of controller)"
restart controller
check "failover: the restarted controller replays its journal" \
    wait_for 10 grep -q 'accepted, unfinished requests replayed' \
    "$R/controller.log"
three_up() { [ "$(inst | grep -o '"state":"up"' | wc -l)" = 3 ]; }
check "failover: every stage registers with it again" wait_for 20 three_up
check "failover: every request accepted before the kill ends done (status)" \
    wait_for 90 all_done
check "failover: no room held and every slot free after the controller kill" \
    wait_for 20 settled
# ---- drain --exit: finish what it holds, then leave with status 0 ------
# Long enough on the transformer (150 steps of 20 ms) for a heartbeat to
# show it running there.
"$DISAGG" submit --json --steps 150 --frames 1 --height 32 --width 32 |
    sed -n 's/.*"request":\([0-9]*\).*/\1/p' > "$T_TMP/ids"
check "failover: a request reaches the transformer" wait_for 20 running_on t0
tpid=$(pid_of t0)
"$DISAGG" drain --exit t0 > "$T_TMP/drain.out" 2>&1
check "failover: drain --exit is accepted" grep -q 'exits once idle' "$T_TMP/drain.out"
check "failover: the request it held still ends done" wait_for 30 all_done
gone() { ! kill -0 "$tpid" 2> /dev/null; }
check "failover: then the transformer exits by itself" wait_for 30 gone
check "failover: ... cleanly, after draining" \
    grep -q 'drain: draining' "$R/t0.log"
check "failover: ... and says so" grep -q 'drained; exiting' "$R/t0.log"
summary failover
