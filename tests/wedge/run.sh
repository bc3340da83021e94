#!/bin/sh
# run.sh: the wedge watchdog (lib/xfer_wedge.c) and the restart in place
# (daemon/stage.c, daemon/daemon.c), on real daemons on loopback.
#   - pause: on each provider, the transformer and the decoder holding a
#     request are frozen with SIGSTOP for 2 s, twice, as a VM pause or a
#     debugger would: neither calls its fabric wedged nor restarts in
#     place, each logs the pause, the controller sees no one leave or
#     join again, and the request ends done with no retry.
#   - real wedge (shm): writes held by a frozen decoder after their send
#     was cancelled still wedge the transformer, which restarts in place
#     with the same pid; the decoder, thawed, does not.
#   - descriptors (tcp;ofi_rxm, whose sockets are not close-on-exec): a
#     decoder restarted in place 5 times has as many descriptors open as
#     after its first start.  That provider never wedges, so the restarts
#     are asked for with DISAGG_TEST_WEDGE (daemon.h, test only).
. tests/lib.sh
scratch
TOP=$(pwd)
DISAGG="$TOP/tui/disagg"
unset DISAGG_CONTROLLER DISAGG_TEST_WEDGE

FROZEN=""
cleanup() {
	for p in $FROZEN; do kill -CONT "$p" 2> /dev/null; done
	[ -n "${DISAGG_RUN:-}" ] && "$DISAGG" down --timeout 10 > /dev/null 2>&1
	[ -n "${KEEP:-}" ] || rm -rf "$T_TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# start NAME PROVIDER T0_STEP_MS [ZERO_COPY]: a pipeline e0 > t0 > d0 in a
# run folder of its own (ZERO_COPY: on, the default, or off: only the
# fabric's writes can wedge, so the real wedge turns zero copy off).  Silence is dead only after 10 s, far past a 2 s freeze;
# no retries, so a stage that drops a room fails its request for all to
# see.
start() {
	DISAGG_RUN="$T_TMP/$1"
	export DISAGG_RUN
	R=$DISAGG_RUN
	mkdir -p "$R"
	cat > "$R/topo.ini" <<EOF
[controller]
listen = ipc://$R/ctl.sock
publish = ipc://$R/pub.sock
dead_after_ms = 10s
heartbeat_ms = 100ms
max_retries = 0

[fabric]
provider = $2
zero_copy = ${4:-on}

[encoder e0]
peer = ipc://$R/e0.sock
stage = ref-encoder
pool = 64M

[transformer t0]
peer = ipc://$R/t0.sock
stage = ref-transformer
step_ms = $3
pool = 64M

[decoder d0]
peer = ipc://$R/d0.sock
stage = ref-decoder
pool = 64M
output_dir = $R/out
EOF
	up_or_bail "wedge: $1" "$R/topo.ini"
}
stop() {
	"$DISAGG" down --timeout 10 > /dev/null 2>&1
	DISAGG_RUN=
}

pid_of() { awk -v n="$1" '$1 == n { print $2 }' "$R/pids"; }
inst() { "$DISAGG" instances --json 2> /dev/null; }
# has NAME FIELD: the instance's FIELD (a queue) is not 0.
has() { inst | grep -q "\"name\":\"$1\",[^}]*\"$2\":[1-9]"; }
is_up() { inst | grep -q "\"name\":\"$1\",[^}]*\"state\":\"up\""; }
# Heard from within the last 300 ms (heartbeats every 100 ms).
fresh() {
	inst | grep -q "\"name\":\"$1\",[^}]*\"heartbeat_age_ms\":\([0-9]\{1,2\}\|[12][0-9][0-9]\)[,}]"
}
# submit STEPS [SIZE]: a request's id.
submit() {
	"$DISAGG" submit --json --steps "$1" --frames 1 --height "${2:-32}" \
	    --width "${2:-32}" | sed -n 's/.*"request":\([0-9]*\).*/\1/p'
}
state_of() {
	"$DISAGG" status --json "$1" | sed -n 's/.*"state":"\([a-z]*\)".*/\1/p'
}
is_done() { [ "$(state_of "$1")" = done ]; }
ended() { case $(state_of "$1") in done|failed|cancelled) ;; *) return 1 ;; esac; }
starts() { grep -c "starting (pid $2," "$R/$1.log"; }
fds() { ls "/proc/$1/fd" | wc -l | tr -d ' '; }
no_provider() { grep -q "no libfabric provider" "$R"/*.log 2> /dev/null; }

# ---- a pause is not a wedge ----------------------------------------------
pause() {
	prov=$1
	tag="wedge: $prov"
	start "pause-$(echo "$prov" | tr -c 'a-z\n' -)" "$prov" 400ms
	t=$(pid_of t0)
	d=$(pid_of d0)
	id=$(submit 10)
	# The transformer computes (4 s) and the decoder waits for its data,
	# its receive armed.
	wait_for 10 has t0 running && wait_for 10 has d0 waiting ||
	    fail "$tag: the request reaches the transformer"
	for round in 1 2; do
		FROZEN="$t $d"
		kill -STOP $FROZEN
		sleep 2 # the freeze itself, not a wait for a condition
		kill -CONT $FROZEN
		FROZEN=""
		wait_for 10 fresh t0 && wait_for 10 fresh d0
	done
	# With no retries, done means no stage dropped its room.
	check "$tag: a request on stages frozen for 2 s, twice, ends done" \
	    wait_for 30 is_done "$id"
	restarted=""
	for s in t0 d0; do
		[ "$(starts "$s" "$(pid_of "$s")")" = 1 ] || restarted="$restarted $s"
		grep -q wedged "$R/$s.log" && restarted="$restarted $s"
	done
	[ -z "$restarted" ] || grep -h 'wedged\|starting' "$R/t0.log" "$R/d0.log" |
	    sed 's/^/# /'
	check "$tag: neither frozen stage calls its fabric wedged or restarts in place" \
	    test -z "$restarted"
	check "$tag: the controller saw neither leave nor join again" \
	    sh -c "[ \$(grep -c ' t0 joined\\| d0 joined' '$R/controller.log') = 2 ] &&
	        ! grep -q ' t0 left\\| d0 left' '$R/controller.log'"
	check "$tag: each logs the pause as one" sh -c \
	    "grep -q 'paused for [0-9]* ms.*not a wedge' '$R/t0.log' &&
	     grep -q 'paused for [0-9]* ms.*not a wedge' '$R/d0.log'"
	stop
}

# ---- a real wedge still restarts in place -------------------------------
real_wedge() {
	tag="wedge: shm"
	start real shm 100ms off
	t=$(pid_of t0)
	d=$(pid_of d0)
	# A first request maps each stage's shared memory into its peer's.
	w=$(submit 1 256)
	wait_for 20 is_done "$w" || fail "$tag: a first request ends done"
	id=$(submit 10 256)
	wait_for 10 has t0 running && wait_for 10 has d0 waiting ||
	    fail "$tag: the request reaches the transformer"
	FROZEN=$d
	kill -STOP "$d"
	# Its output ready, the transformer writes it to the frozen decoder
	# (too big to be copied into the decoder's queue at once: the decoder
	# must take it); cancelled, the send ends with those writes held.
	wait_for 10 has t0 sending || fail "$tag: the transformer sends"
	"$DISAGG" cancel "$id" > /dev/null
	again() { [ "$(starts t0 "$t")" = 2 ]; }
	check "$tag: writes held by a frozen peer past their send still wedge the sender" \
	    wait_for 15 grep -q 'write to a peer that stopped making progress' \
	    "$R/t0.log"
	check "$tag: ... which restarts in place, same pid" wait_for 10 again
	kill -CONT "$d"
	FROZEN=""
	check "$tag: ... and registers again" wait_for 10 sh -c \
	    "[ \$(grep -c ' t0 joined' '$R/controller.log') = 2 ]"
	check "$tag: the thawed peer does not restart" \
	    sh -c "[ \$(grep -c 'starting (pid' '$R/d0.log') = 1 ] &&
	        ! grep -q wedged '$R/d0.log'"
	stop
}

# ---- what crosses a restart in place ------------------------------------
descriptors() {
	prov="tcp;ofi_rxm"
	tag="wedge: $prov"
	DISAGG_TEST_WEDGE=d0:5
	export DISAGG_TEST_WEDGE
	start fds "$prov" 0
	unset DISAGG_TEST_WEDGE
	d=$(pid_of d0)
	before=$(fds "$d")
	# The last place: no other stage connects to it, so a fresh image
	# opens exactly what the first one did.
	for i in 1 2 3 4 5; do
		id=$(submit 1)
		back() { [ "$(starts d0 "$d")" = $((i + 1)) ] && is_up d0; }
		wait_for 15 back || break
		wait_for 15 ended "$id"
	done
	check "$tag: the decoder restarts in place 5 times, same pid" \
	    test "$(starts d0 "$d")" = 6
	after=$(fds "$d")
	check "$tag: ... and then has as many descriptors as after its first start ($before, now $after)" \
	    test "$before" = "$after"
	check "$tag: ... and keeps its names: comm disaggd, 'disaggd: d0 decoder' in ps" \
	    sh -c "[ \"\$(cat /proc/$d/comm)\" = disaggd ] && \
	        ps -o args= -p $d | grep -qx 'disaggd: d0 decoder'"
	id=$(submit 1)
	check "$tag: ... and still serves" wait_for 20 is_done "$id"
	stop
}

pause shm
pause "tcp;ofi_rxm"
real_wedge
descriptors
summary wedge
