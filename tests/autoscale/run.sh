#!/bin/sh
# run.sh: the controller's autoscaler on one host (issue 14, section 5).
# A topology with one transformer and a spare (autostart = no): up leaves
# the spare alone; a burst of slow requests makes the controller start it
# through the run folder's supervisor (RUN/pids names it) and it takes
# work; idleness drains it and it exits; every request ends done; the
# decisions are "scale" events the console shows; down stops the rest.
# Then the same with a scale_command and a stop_command, as for hosts
# the controller cannot start daemons on: the command starts the spare,
# its exit status is logged when the drained daemon exits.
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
	for p in $(awk '{ print $2 }' "$T_TMP/pids.seen" 2> /dev/null); do
		kill -KILL "$p" 2> /dev/null
	done
	[ -n "${KEEP:-}" ] || rm -rf "$T_TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# topo FILE [KEY = VALUE...]: the topology, the keys added to its
# [autoscale transformer].  Short cooldowns and frequent reports keep
# the test short; a room takes 5 steps of 100 ms on a single-worker
# transformer.
topo() {
	f=$1
	shift
	cat > "$f" <<EOF
[controller]
listen = ipc://$R/ctl.sock
publish = ipc://$R/pub.sock
dead_after_ms = 1s
heartbeat_ms = 100ms

[fabric]
provider = shm

[autoscale transformer]
min = 1
max = 2
target = 0.8
cooldown = 2s
$(for kv in "$@"; do echo "$kv"; done)

[encoder e0]
peer = ipc://$R/e0.sock
pool = 32M
workers = 1

[transformer t0]
peer = ipc://$R/t0.sock
step_ms = 100ms
pool = 32M
workers = 1

[transformer t1]
peer = ipc://$R/t1.sock
step_ms = 100ms
pool = 32M
workers = 1
autostart = no

[decoder d0]
peer = ipc://$R/d0.sock
pool = 32M
workers = 1
output_dir = $T_TMP/out
EOF
}
topo "$T_TMP/topo.ini"
up_or_bail autoscale "$T_TMP/topo.ini"
cp "$R/pids" "$T_TMP/pids.seen"

inst() { "$DISAGG" instances --json 2> /dev/null; }
state_of() { inst | grep -q "\"name\":\"$1\",[^}]*\"state\":\"$2\""; }
pid_of() { awk -v n="$1" '$1 == n { print $2 }' "$R/pids"; }
running() {
	st=$(sed 's/.*) //' "/proc/$1/stat" 2> /dev/null | cut -c1)
	[ -n "$st" ] && [ "$st" != Z ]
}
# burst N: N slow requests, their ids appended to $T_TMP/ids.
burst() {
	"$DISAGG" submit --steps 5 --frames 1 --height 32 --width 32 \
	    --count "$1" 2> "$T_TMP/submit.err" |
	    sed -n 's/^request \([0-9]*\) submitted$/\1/p' >> "$T_TMP/ids"
}
placed_on_t1() {
	for id in $(cat "$T_TMP/ids"); do
		"$DISAGG" status --json "$id" 2> /dev/null |
		    grep -q '"transformer":"t1"' && return 0
	done
	return 1
}
all_done() {
	for id in $(cat "$T_TMP/ids"); do
		"$DISAGG" status --json "$id" 2> /dev/null |
		    grep -q '"state":"done"' || return 1
	done
}
logged() { grep -qF -- "$1" "$R/controller.log"; }

check "up leaves the spare t1 (autostart = no) alone" \
    sh -c "! grep -q '^t1 ' '$R/pids' && ! '$DISAGG' instances | grep -qw t1"

: > "$T_TMP/ids"
burst 6
check "a burst of 6 requests is accepted" \
    test "$(wc -l < "$T_TMP/ids")" = 6
if wait_for 20 state_of t1 up; then
	ok "the burst makes the controller start the spare t1"
else
	sed 's/^/# /' "$R/controller.log" | tail -20
	fail "the burst makes the controller start the spare t1"
fi
T1=$(pid_of t1)
[ -n "$T1" ] && echo "t1 $T1" >> "$T_TMP/pids.seen"
check "t1 is in RUN/pids with a running process, so down would stop it" \
    sh -c "[ -n '$T1' ] && kill -0 '$T1'"
check "the decision is logged with its reason" \
    logged "autoscale: transformer: 1 -> 2 (queue "

# More work while both are up: the policy places some of it on t1.
burst 6
check "t1 takes work (a request placed on it)" wait_for 20 placed_on_t1
if wait_for 60 all_done; then
	ok "every request ends done"
else
	for id in $(cat "$T_TMP/ids"); do
		"$DISAGG" status "$id" 2>&1 | sed 's/^/# /'
	done
	fail "every request ends done"
fi

# Idle for a cooldown: the spare drains and its process exits.
gone() { ! running "$T1" && state_of t1 dead; }
if wait_for 30 gone; then
	ok "idleness drains t1 and it exits"
else
	sed 's/^/# /' "$R/controller.log" | tail -20
	fail "idleness drains t1 and it exits"
fi
check "scale-in is logged with its reason" \
    logged "autoscale: transformer: 2 -> 1 (queue 0 rooms"
check "t1 left drained" logged "autoscale: transformer t1: drained and left"
check "t0 stays up (the autoscaler stops only spares)" state_of t0 up
check "no request failed on the way" all_done

# The console's Events view shows the decisions (kept by the ring).
"$DISAGG" console -b -n 1 -v events > "$T_TMP/events" 2>&1
check "the console's Events view shows the scale-out" \
    grep -q 'scale .*transformer: 1 -> 2 (queue' "$T_TMP/events"
check "the console's Events view shows the scale-in" \
    grep -q 'scale .*transformer: 2 -> 1' "$T_TMP/events"

"$DISAGG" down --timeout 10 > "$T_TMP/down.out" 2>&1
none_left() {
	while read -r _ pid; do
		running "$pid" && return 1
	done < "$T_TMP/pids.seen"
	return 0
}
check "down stops every daemon" wait_for 10 none_left

# scale_command: a script that says which section it was asked for and
# becomes the spare (exec), as `systemctl start disaggd@%n` would start
# it on another host.
cat > "$T_TMP/spare.sh" <<EOF
echo start \$1 \$2 >> "$T_TMP/asked"
echo \$\$ > "$T_TMP/\$2.pid"
exec "$DISAGGD" -d -f "$T_TMP/cmd.ini" -N "\$2" 2>> "$R/\$2.cmd.log"
EOF
topo "$T_TMP/cmd.ini" "scale_command = sh $T_TMP/spare.sh %r %n" \
    "stop_command = echo stop %r %n >> $T_TMP/asked"
check "scale_command and stop_command check clean" \
    sh -c "'$DISAGGD' -n -f '$T_TMP/cmd.ini' > /dev/null"
up_or_bail autoscale "$T_TMP/cmd.ini"
cat "$R/pids" >> "$T_TMP/pids.seen"
: > "$T_TMP/ids"
burst 6
if wait_for 20 state_of t1 up; then
	ok "scale_command starts the spare t1"
else
	sed 's/^/# /' "$R/controller.log" | tail -20
	fail "scale_command starts the spare t1"
fi
T1=$(cat "$T_TMP/t1.pid" 2> /dev/null)
[ -n "$T1" ] && echo "t1 $T1" >> "$T_TMP/pids.seen"
check "scale_command got %r and %n" grep -qx "start transformer t1" \
    "$T_TMP/asked"
check "every request ends done" wait_for 60 all_done
check "idleness drains t1 and it exits" wait_for 30 gone
check "its scale_command's exit is logged" \
    wait_for 5 logged "autoscale: scale_command of t1 exited 0"
check "stop_command runs once it has left" \
    wait_for 5 grep -qx "stop transformer t1" "$T_TMP/asked"
"$DISAGG" down --timeout 10 > "$T_TMP/down.out" 2>&1
check "down stops every daemon" wait_for 10 none_left
summary autoscale
