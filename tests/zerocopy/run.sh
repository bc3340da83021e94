#!/bin/sh
# run.sh: zero copy on one host ([fabric] zero_copy, lib/xfer_local.c)
# with real daemons: one-host pipelines of reference stages, each in a
# run folder of its own, and SIGKILL where it hurts most.
#   - happy path, once per provider (shm, tcp;ofi_rxm): the outputs are
#     byte-identical to `disagg ref`; each sender maps its receiver's
#     sealed memfd pool (log, /proc/PID/maps); the transformer's sends
#     are local (metrics disagg_transfer_local_total, promtool-clean),
#     handoffs written in place among them;
#   - the sender killed mid-handoff: a slow transformer writing into the
#     decoder's held extent is SIGKILLed; the decoder's receive fails at
#     once (the local sender went away), every accepted request ends, the
#     decoder leaks no room and no slot, the encoder unmaps the dead
#     transformer's pool;
#   - the receiver killed while mapped: the decoder is SIGKILLed under the
#     slow transformer's leases; the transformer says it went away, its
#     rooms end, its pool is all free, the dead pool is unmapped; a
#     restarted decoder serves again and its new pool is mapped;
#     (twice: the controller releases the transformer's rooms first, or
#     their sends to the dead decoder fail first);
#   - a cancel while the decoder's extent is held (the transformer
#     SIGSTOPped across it): the decoder keeps the slots out of its pool
#     until the transformer lets go (DROP), or dies (SIGKILL);
#   - zero_copy = off: requests go through the fabric, nothing is mapped.
# Every wait has a deadline (tests/lib.sh wait_for).
#
#   sh tests/zerocopy/run.sh          KEEP=1 keeps the scratch folder
#   ZEROCOPY_CASES="happy sender receiver cancel hold hello off"   only these cases
. tests/lib.sh
scratch
TOP=$(pwd -P)
DISAGG="$TOP/tui/disagg"
DISAGGD="$TOP/daemon/disaggd"
PYTHON=/usr/bin/python3
unset DISAGG_CONTROLLER DISAGG_RUN
: > "$T_TMP/started"
: > "$T_TMP/runs"

# ours PID: PID is still one of the daemons started here (our disaggd,
# with a run folder in our scratch folder), not a process that took its
# number since.
ours() {
	[ "$(readlink "/proc/$1/exe" 2> /dev/null)" = "$DISAGGD" ] &&
	    tr '\0' '\n' < "/proc/$1/environ" 2> /dev/null |
	    grep -q "^DISAGG_RUN=$T_TMP/"
}
cleanup() {
	for r in $(cat "$T_TMP/runs" 2> /dev/null); do
		DISAGG_RUN=$r "$DISAGG" down --timeout 10 > /dev/null 2>&1
	done
	for p in $(cat "$T_TMP/started" 2> /dev/null); do
		ours "$p" && kill -KILL "$p" 2> /dev/null
	done
	[ -n "${KEEP:-}" ] || rm -rf "$T_TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# The request every case sends, and `disagg ref` runs for comparison.
PROMPT="a paper boat on a zero-copy river"
SHAPE="--frames 5 --height 32 --width 48"

want() { [ -z "${ZEROCOPY_CASES:-}" ] || echo " $ZEROCOPY_CASES " | grep -q " $1 "; }

free_port() {
	"$PYTHON" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# pipeline NAME PROVIDER ZERO_COPY E_STEP T_STEP [DEAD_AFTER]: start a
# pipeline in $T_TMP/NAME (encoder step_ms E_STEP, transformer T_STEP,
# the controller's dead_after_ms DEAD_AFTER, 1500ms unless given), each stage
# with GET /metrics; sets P, R (its run folder), PE PT PD (the ports).
# 1 (with the reason shown) when it does not come up.  Where a case needs
# the transformer to write in place, E_STEP is long (300ms): the
# decoder's manifest is then at the transformer before the encoder's
# output, so before its room reaches a worker (lib/rooms.c s_place).
pipeline() {
	P=$T_TMP/$1
	R=$P/run
	DISAGG_RUN=$R
	export DISAGG_RUN
	mkdir -p "$R"
	echo "$R" >> "$T_TMP/runs"
	PE=$(free_port)
	PT=$(free_port)
	PD=$(free_port)
	{
		cat <<EOF
[controller]
listen = ipc://$R/ctl.sock
publish = ipc://$R/pub.sock
dead_after_ms = ${6:-1500ms}
# Frequent reports: the checks below watch rooms in a slow worker.
heartbeat_ms = 100ms

[fabric]
provider = $2
zero_copy = $3
EOF
		ref_stage encoder e0 "$R" "step_ms = $4" "metrics = 127.0.0.1:$PE"
		ref_stage transformer t0 "$R" "step_ms = $5" "metrics = 127.0.0.1:$PT"
		ref_stage decoder d0 "$R" "step_ms = 10ms" "output_dir = $P/out" "metrics = 127.0.0.1:$PD"
	} > "$P/topo.ini"
	if ! "$DISAGG" up -f "$P/topo.ini" --timeout 20 > "$P/up.out" 2>&1; then
		sed 's/^/# /' "$P/up.out"
		awk '{ print $2 }' "$R/pids" >> "$T_TMP/started" 2> /dev/null
		return 1
	fi
	awk '{ print $2 }' "$R/pids" >> "$T_TMP/started"
	wait_for 20 idle
}
# down: stop this pipeline; once its daemons are gone, none is ours to
# kill any more.
down() {
	"$DISAGG" down --timeout 10 > /dev/null 2>&1
	wait_for 10 none_ours && : > "$T_TMP/started"
}
none_ours() {
	for p in $(cat "$T_TMP/started"); do
		ours "$p" && return 1
	done
	return 0
}

pid_of() { awk -v n="$1" '$1 == n { print $2 }' "$R/pids"; }
# restart NAME: the same section again (after a SIGKILL), as failover does.
restart() {
	setsid "$DISAGGD" -d -f "$P/topo.ini" -N "$1" >> "$R/$1.log" 2>&1 \
	    < /dev/null &
	echo $! >> "$T_TMP/started"
	sed "s/^$1 .*/$1 $!/" "$R/pids" > "$R/pids.new" && mv "$R/pids.new" "$R/pids"
}
inst() { "$DISAGG" instances --json 2> /dev/null; }
up_again() { inst | grep -q "\"name\":\"$1\",[^}]*\"state\":\"up\""; }
running_on() { inst | grep -q "\"name\":\"$1\",[^}]*\"running\":[1-9]"; }
# field NAME KEY: a number of instance NAME in `instances --json`.
field() {
	inst | grep -o "\"name\":\"$1\",[^}]*" | grep -o "\"$2\":[0-9]*" |
	    cut -d: -f2
}
idle() {
	j=$(inst) || return 1
	[ "$(echo "$j" | grep -o '"rooms":0' | wc -l)" = 3 ] &&
	    ! echo "$j" | grep -q '"state":"\(dead\|draining\)'
}
waiting_is() { [ "$(field "$1" waiting)" = "$2" ]; }
rooms_are() { [ "$(field "$1" rooms)" = "$2" ]; }
# clean NAME: a stage with no room and every one of its 64 slots free.
clean() { [ "$(field "$1" rooms)" = 0 ] && [ "$(field "$1" free_slots)" = 64 ]; }
no_rooms() { [ -z "$("$DISAGG" rooms --json 2> /dev/null | grep -o '"room":[1-9]')" ]; }
settled() { idle && clean e0 && clean t0 && clean d0 && no_rooms; }

# memfds PID: how many distinct pool memfds PID maps (its own and the
# receivers' it writes to).
memfds() {
	grep 'memfd:disagg-pool' "/proc/$1/maps" 2> /dev/null |
	    awk '{ print $5 }' | sort -u | wc -l | tr -d ' '
}
memfds_are() { [ "$(memfds "$1")" = "$2" ]; }
# mapped LOG PID: LOG says the pool of the receiver PID was mapped.
mapped() { grep -q "xfer: receiver pool disagg-pool-$2-[0-9a-f]* mapped" "$1"; }

# metric PORT NAME LABEL: the value of NAME{...LABEL...} at PORT.
scrape() { curl -s -m 5 "http://127.0.0.1:$1/metrics"; }
metric() {
	scrape "$1" | grep "^$2{" | grep -F "$3" | awk '{ print $2 }' | head -1
}
metric_ge() {
	v=$(metric "$1" "$2" "$3")
	[ -n "$v" ] && awk -v v="$v" -v n="$4" 'BEGIN { exit !(v + 0 >= n) }'
}
metric_is() {
	v=$(metric "$1" "$2" "$3")
	[ -n "$v" ] && awk -v v="$v" -v n="$4" 'BEGIN { exit !(v + 0 == n) }'
}
# local_sum_is PORT N: the stage's local sends (handoff + copy) are N.
local_sum_is() {
	[ "$(scrape "$1" | awk '/^disagg_transfer_local_total\{/ { s += $2 }
	    END { print s + 0 }')" = "$2" ]
}
# local_count PORT: the stage's local sends (handoff + copy) so far;
# local_ge PORT N: N or more.
local_count() {
	scrape "$1" | awk '/^disagg_transfer_local_total\{/ { s += $2 }
	    END { print s + 0 }'
}
local_ge() { [ "$(local_count "$1")" -ge "$2" ]; }
# pool_free NAME PORT: all 64 slots free, as instances and metrics say.
pool_free() {
	[ "$(field "$1" free_slots)" = 64 ] &&
	    metric_is "$2" disagg_pool_bytes 'state="free"' 67108864
}
promtool_ok() {
	scrape "$1" > "$T_TMP/metrics.txt" &&
	    promtool check metrics < "$T_TMP/metrics.txt" > "$T_TMP/promtool.out" 2>&1
}

# submit N STEPS: N requests (seeds 1..N), ids one a line in $P/ids.
submit() {
	: > "$P/ids"
	i=1
	while [ $i -le "$1" ]; do
		"$DISAGG" submit --json --prompt "$PROMPT" $SHAPE --steps "$2" \
		    --seed $i | sed -n 's/.*"request":\([0-9]*\).*/\1/p' \
		    >> "$P/ids"
		i=$((i + 1))
	done
	[ "$(wc -l < "$P/ids" | tr -d ' ')" = "$1" ]
}
state_of() {
	"$DISAGG" status --json "$1" 2> /dev/null |
	    sed -n 's/.*"state":"\([a-z0-9]*\)".*/\1/p'
}
# Every id has ended: done, or failed with a reason; $P/ndone says how
# many done.
ended() {
	n=0
	for id in $(cat "$P/ids"); do
		case $(state_of "$id") in
		done) n=$((n + 1)) ;;
		failed) "$DISAGG" status --json "$id" 2> /dev/null |
			    grep -q '"error":"[^"]' || return 1 ;;
		*) return 1 ;;
		esac
	done
	echo "$n" > "$P/ndone"
}
all_done() { ended && [ "$(cat "$P/ndone")" = "$(wc -l < "$P/ids" | tr -d ' ')" ]; }
# same_as_ref STEPS: every request of $P/ids that ended done wrote the
# file `disagg ref` writes for the same parameters (seed = its line).
same_as_ref() {
	i=1
	for id in $(cat "$P/ids"); do
		if [ "$(state_of "$id")" = done ]; then
			"$DISAGG" ref --json --prompt "$PROMPT" $SHAPE --steps "$1" \
			    --seed $i --request "$id" -o "$P/ref" > /dev/null 2>&1 ||
			    return 1
			cmp -s "$P/out/$id.y4m" "$P/ref/$id.y4m" || {
				echo "# $P/out/$id.y4m differs from disagg ref"
				return 1
			}
		fi
		i=$((i + 1))
	done
}

# ---- the happy path, once per provider -------------------------------
# The encoder is slowish so that the decoder's manifest is at the
# transformer before its rooms reach a worker: those are written in place.
happy() {
	g="zerocopy($1)"
	if ! pipeline "happy-$(echo "$1" | tr -c 'a-z0-9\n' _)" "$1" on 100ms 20ms; then
		fail "$g: the pipeline starts"
		return
	fi
	ok "$g: the pipeline starts"
	e=$(pid_of e0); t=$(pid_of t0); d=$(pid_of d0)
	check "$g: 3 requests accepted" submit 3 4
	check "$g: all 3 end done" wait_for 60 all_done
	check "$g: each output is byte-identical to disagg ref" same_as_ref 4
	check "$g: the transformer mapped the decoder's pool (log)" \
	    mapped "$R/t0.log" "$d"
	check "$g: the encoder mapped the transformer's pool (log)" \
	    mapped "$R/e0.log" "$t"
	check "$g: the decoder's pool is a memfd (/proc maps)" memfds_are "$d" 1
	check "$g: the transformer maps its pool and the decoder's" \
	    memfds_are "$t" 2
	check "$g: the encoder maps its pool and the transformer's" \
	    memfds_are "$e" 2
	check "$g: every transformer send was local (handoff + copy = 3)" \
	    wait_for 10 local_sum_is "$PT" 3
	check "$g: the transformer handed over in place (handoff >= 1)" \
	    metric_ge "$PT" disagg_transfer_local_total 'kind="handoff"' 1
	check "$g: every encoder send was local too" \
	    wait_for 10 local_sum_is "$PE" 3
	# The encoder's rooms wait up to 5 ms for the transformer's manifest
	# before they run, so most are written in place; one whose manifest
	# came later is copied.  Which, is timing: "hold unanswered" below
	# makes the copy happen for sure.
	check "$g: no send failed" \
	    metric_is "$PT" disagg_transfer_errors_total 'class="send_failed"' 0
	if command -v promtool > /dev/null; then
		check "$g: promtool accepts the transformer's metrics" promtool_ok "$PT"
	else
		skip "$g: promtool accepts the transformer's metrics: promtool not installed"
	fi
	check "$g: no room held and every slot free" wait_for 20 settled
	down
}
if want happy; then
	happy shm
	happy "tcp;ofi_rxm"
fi

# ---- the sender killed mid-handoff -----------------------------------
# 40 steps of 100 ms: a room sits in the transformer for 4 s, its output
# going straight into the decoder's held extent.
g="zerocopy(kill sender)"
if ! want sender; then
	:
elif pipeline kill-t0 shm on 300ms 100ms; then
	ok "$g: the pipeline starts"
	e=$(pid_of e0); t=$(pid_of t0); d=$(pid_of d0)
	check "$g: 3 requests accepted" submit 3 40
	check "$g: rooms reach the transformer's workers" wait_for 20 running_on t0
	check "$g: ... which mapped the decoder's pool to write there" \
	    mapped "$R/t0.log" "$d"
	check "$g: the encoder maps the transformer's pool" memfds_are "$e" 2
	held=$(grep -c 'went away' "$R/d0.log")
	kill -KILL "$t"
	check "$g: the decoder's held receive fails: the local sender went away" \
	    wait_for 10 grep -q 'the local sender holding it went away' "$R/d0.log"
	check "$g: the encoder says the transformer's pool went away" \
	    wait_for 10 grep -q "receiver disagg-pool-$t-[0-9a-f]* went away" "$R/e0.log"
	check "$g: ... and unmaps it" wait_for 20 memfds_are "$e" 1
	check "$g: the decoder holds no room and every slot is free" \
	    wait_for 20 clean d0
	restart t0
	check "$g: the transformer comes back" wait_for 20 up_again t0
	check "$g: every accepted request ends (done, or failed with a reason)" \
	    wait_for 90 ended
	echo "# $(cat "$P/ndone" 2> /dev/null) of 3 done after the kill"
	check "$g: those done are byte-identical to disagg ref" same_as_ref 40
	check "$g: no room held and every slot free" wait_for 20 settled
	# The decoder's pool still serves a new sender.
	t=$(pid_of t0)
	check "$g: a new request ends done" submit 1 4
	check "$g: ... done" wait_for 60 all_done
	check "$g: ... byte-identical to disagg ref" same_as_ref 4
	check "$g: ... the restarted transformer mapped the decoder's pool" \
	    mapped "$R/t0.log" "$d"
	check "$g: ... and the encoder the new transformer's" \
	    mapped "$R/e0.log" "$t"
	check "$g: no room held and every slot free at the end" wait_for 20 settled
	down
else
	fail "$g: the pipeline starts"
fi

# ---- the receiver killed under the transformer's leases --------------
# kill_receiver WHO DEAD_AFTER STEPS: the transformer's rooms run for
# STEPS x 100 ms, writing into the decoder's held extents, when the
# decoder is SIGKILLed.  WHO says which comes first:
#   controller: it declares the decoder dead (1.5 s) and releases the
#     transformer's rooms while their workers still write: each lease is
#     dropped on a dead mapping;
#   send: the workers finish first (2 s) and hand over to a receiver
#     that went away: the sends fail, long before the controller (10 s)
#     learns anything.
# Either way the mapping goes once nothing uses it.
kill_receiver() {
	g="zerocopy(kill receiver, $1 first)"
	if ! pipeline "kill-d0-$1" shm on 300ms 100ms "$2"; then
		fail "$g: the pipeline starts"
		return
	fi
	ok "$g: the pipeline starts"
	t=$(pid_of t0); d=$(pid_of d0)
	own=$(memfds "$t")
	check "$g: the transformer maps its own pool before any request" \
	    test "$own" = 1
	check "$g: 3 requests accepted" submit 3 "$3"
	check "$g: rooms reach the transformer's workers" wait_for 20 running_on t0
	check "$g: ... which mapped the decoder's pool" mapped "$R/t0.log" "$d"
	check "$g: ... one more memfd in its maps" memfds_are "$t" 2
	kill -KILL "$d"
	check "$g: the transformer says the decoder went away" \
	    wait_for 10 grep -q "receiver disagg-pool-$d-[0-9a-f]* went away" "$R/t0.log"
	if [ "$1" = send ]; then
		check "$g: the transformer's sends to it fail" wait_for 10 \
		    metric_ge "$PT" disagg_transfer_errors_total 'class="send_failed"' 1
		check "$g: ... saying the local receiver went away" \
		    grep -q "local receiver disagg-pool-$d-[0-9a-f]* went away" "$R/t0.log"
	else
		# 4 s of compute: no room could finish before the kill.
		check "$g: none was handed over" \
		    metric_is "$PT" disagg_transfer_local_total 'kind="handoff"' 0
	fi
	check "$g: the transformer's rooms all end" wait_for 30 rooms_are t0 0
	check "$g: its pool is all free (64 slots, and 64M free bytes in its metrics)" \
	    wait_for 10 pool_free t0 "$PT"
	check "$g: the dead decoder's pool is unmapped" \
	    wait_for 20 memfds_are "$t" 1
	restart d0
	check "$g: the decoder comes back" wait_for 20 up_again d0
	check "$g: every accepted request ends (done, or failed with a reason)" \
	    wait_for 90 ended
	echo "# $(cat "$P/ndone" 2> /dev/null) of 3 done after the kill"
	check "$g: those done are byte-identical to disagg ref" same_as_ref "$3"
	d=$(pid_of d0)
	check "$g: a new request ends done" submit 1 4
	check "$g: ... done" wait_for 60 all_done
	check "$g: ... byte-identical to disagg ref" same_as_ref 4
	check "$g: ... the transformer mapped the new decoder's pool" \
	    mapped "$R/t0.log" "$d"
	check "$g: ... two memfds again: its own and the new decoder's" \
	    memfds_are "$t" 2
	check "$g: no room held and every slot free" wait_for 20 settled
	down
}
if want receiver; then
	kill_receiver controller 1500ms 40
	kill_receiver send 10s 20
fi

# ---- cancelled while held ---------------------------------------------
# A request cancelled while the transformer writes into the decoder's
# held extent: the decoder's room ends at once, but the extent stays out
# of its pool until the transformer lets go: DROP once its worker
# returns, or its death (hang-up).  The transformer is stopped (SIGSTOP)
# across the cancel, so that its workers cannot give up before the
# decoder has released its rooms: what the decoder does then is the
# point.  dead_after_ms is long enough for the stop to go unnoticed.
g="zerocopy(cancel while held)"
kept() { rooms_are d0 0 && [ "$(field d0 free_slots)" -lt 64 ]; }
cancel_all() {
	for id in $(cat "$P/ids"); do
		"$DISAGG" cancel "$id" > /dev/null 2>&1 || return 1
	done
}
all_cancelled() {
	for id in $(cat "$P/ids"); do
		[ "$(state_of "$id")" = cancelled ] || return 1
	done
}
if ! want cancel; then
	:
elif pipeline cancel shm on 300ms 100ms 10s; then
	ok "$g: the pipeline starts"
	t=$(pid_of t0); d=$(pid_of d0)
	check "$g: 2 requests accepted" submit 2 40
	check "$g: rooms reach the transformer's workers" wait_for 20 running_on t0
	check "$g: ... which mapped the decoder's pool" mapped "$R/t0.log" "$d"
	kill -STOP "$t"
	check "$g: both are cancelled (the transformer stopped)" cancel_all
	check "$g: ... and end cancelled" wait_for 10 all_cancelled
	check "$g: the decoder's rooms end, their held slots kept out of its pool" \
	    wait_for 5 kept
	kill -CONT "$t"
	check "$g: once the transformer lets go (DROP), every slot is free" \
	    wait_for 20 settled
	check "$g: nothing was handed over" \
	    metric_is "$PT" disagg_transfer_local_total 'kind="handoff"' 0
	# The same, but the transformer dies instead of letting go.
	check "$g: 2 more requests accepted" submit 2 40
	check "$g: rooms reach the transformer's workers again" wait_for 20 running_on t0
	kill -STOP "$t"
	check "$g: both are cancelled (the transformer stopped)" cancel_all
	check "$g: the decoder keeps their held slots" wait_for 5 kept
	kill -KILL "$t"
	check "$g: the transformer's death gives them back to the decoder's pool" \
	    wait_for 10 clean d0
	check "$g: ... and the encoder unmaps the dead transformer's pool" \
	    wait_for 20 memfds_are "$(pid_of e0)" 1
	restart t0
	check "$g: the transformer comes back" wait_for 20 up_again t0
	check "$g: a new request ends done" submit 1 4
	check "$g: ... done" wait_for 60 all_done
	check "$g: ... byte-identical to disagg ref" same_as_ref 4
	check "$g: no room held and every slot free" wait_for 20 settled
	down
else
	fail "$g: the pipeline starts"
fi

# ---- a receiver that does not answer a HOLD in time --------------------
# The decoder stopped (SIGSTOP) once its manifests are out, while the
# encoder (1.5 s) still computes, so before the transformer's rooms reach
# its workers: each HOLD goes unanswered for 100 ms, the transformer lets go
# (DROP) and computes into its own pool; once the decoder runs again its
# output is copied through the mapping.  Nothing is lost or leaked, the
# outputs are those of `disagg ref`, and the late HOLD the decoder then
# reads holds nothing for ever.
g="zerocopy(hold unanswered)"
if ! want hold; then
	:
elif pipeline hold shm on 1500ms 50ms 10s; then
	ok "$g: the pipeline starts"
	t=$(pid_of t0); d=$(pid_of d0)
	# A first request maps the decoder's pool.
	check "$g: a first request ends done" submit 1 4
	check "$g: ... done" wait_for 60 all_done
	check "$g: ... the transformer mapped the decoder's pool" \
	    mapped "$R/t0.log" "$d"
	check "$g: 2 more requests accepted" submit 2 10
	check "$g: their rooms wait at the decoder (manifests sent)" \
	    wait_for 10 waiting_is d0 2
	kill -STOP "$d"
	# A room runs only after its HOLD was answered or timed out: the
	# decoder, stopped, answers none.
	check "$g: the transformer runs them with the decoder stopped" \
	    wait_for 10 running_on t0
	kill -CONT "$d"
	check "$g: both end done" wait_for 60 all_done
	check "$g: byte-identical to disagg ref" same_as_ref 10
	check "$g: the transformer copied them through the mapping (copy >= 1)" \
	    wait_for 10 metric_ge "$PT" disagg_transfer_local_total 'kind="copy"' 1
	check "$g: no room held and every slot free" wait_for 20 settled
	down
else
	fail "$g: the pipeline starts"
fi

# ---- a receiver too slow to say hello ----------------------------------
# The decoder stopped (SIGSTOP) when the transformer first connects to its
# pool: no hello within 500 ms, and that request goes over the fabric.  The
# decoder is alive and on this host all along: once it runs again, a
# later request maps its pool and is handed over in place (a slow hello
# is no refusal for good).
g="zerocopy(slow hello)"
# submit_one STEPS: one more request, seed = its line in $P/ids.
submit_one() {
	"$DISAGG" submit --json --prompt "$PROMPT" $SHAPE --steps "$1" \
	    --seed $(( $(wc -l < "$P/ids") + 1 )) |
	    sed -n 's/.*"request":\([0-9]*\).*/\1/p' >> "$P/ids"
}
# retry_maps: one more request, done; whether the pool is mapped by now.
retry_maps() {
	submit_one 4 && wait_for 30 all_done && mapped "$R/t0.log" "$d"
}
if ! want hello; then
	:
elif pipeline hello shm on 1500ms 20ms 10s; then
	ok "$g: the pipeline starts"
	t=$(pid_of t0); d=$(pid_of d0)
	check "$g: a request accepted" submit 1 4
	check "$g: its room waits at the decoder (manifest sent)" \
	    wait_for 10 waiting_is d0 1
	kill -STOP "$d"
	check "$g: the transformer gets no hello from the stopped decoder" \
	    wait_for 20 grep -q "pool disagg-pool-$d-[0-9a-f]* sent no .*hello" "$R/t0.log"
	kill -CONT "$d"
	check "$g: the request ends done, over the fabric" wait_for 60 all_done
	check "$g: ... byte-identical to disagg ref" same_as_ref 4
	check "$g: a later request maps the decoder's pool" wait_for 40 retry_maps
	# The request that mapped it may have done so at its send (a copy):
	# the next one, with the pool mapped before its room runs, is written
	# in place, unless its hold goes unanswered for 100 ms on a swamped
	# machine; then it is copied.  Either way, not over the fabric.
	# (all_done and friends use $n: a name of its own.)
	local_before=$(local_count "$PT")
	check "$g: the next request is accepted" submit_one 4
	check "$g: ... done" wait_for 60 all_done
	check "$g: ... sent to the decoder's mapped pool, not over the fabric" \
	    wait_for 10 local_ge "$PT" $((local_before + 1))
	check "$g: every request done, byte-identical to disagg ref" same_as_ref 4
	check "$g: no room held and every slot free" wait_for 20 settled
	down
else
	fail "$g: the pipeline starts"
fi

# ---- zero_copy = off -------------------------------------------------
g="zerocopy(off)"
if ! want off; then
	:
elif pipeline off shm off 20ms 20ms; then
	ok "$g: the pipeline starts"
	e=$(pid_of e0); t=$(pid_of t0); d=$(pid_of d0)
	check "$g: 2 requests accepted" submit 2 4
	check "$g: both end done" wait_for 60 all_done
	check "$g: byte-identical to disagg ref" same_as_ref 4
	check "$g: no pool was mapped (no log says so)" \
	    sh -c "! grep -q 'receiver pool .* mapped' '$R/e0.log' '$R/t0.log' '$R/d0.log'"
	check "$g: no memfd pool in any stage's maps" \
	    sh -c "! grep -q 'memfd:disagg-pool' /proc/$e/maps /proc/$t/maps /proc/$d/maps"
	check "$g: the transformer's sends went over the fabric" \
	    wait_for 10 metric_ge "$PT" disagg_transfer_bytes_total 'direction="send"' 1
	check "$g: ... none local" local_sum_is "$PT" 0
	check "$g: no room held and every slot free" wait_for 20 settled
	down
else
	fail "$g: the pipeline starts"
fi
summary zerocopy
