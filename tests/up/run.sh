#!/bin/sh
# run.sh: `disagg up` and `disagg down` on the built-in one-host topology,
# in a run folder of its own (ipc endpoints there, so it runs beside
# other tests): everything registers, a request goes through, a second
# up is refused, down stops every daemon, and down again is harmless.
. tests/lib.sh
scratch
TOP=$(pwd)
DISAGG="$TOP/tui/disagg"
DISAGG_RUN="$T_TMP/run"
export DISAGG_RUN
unset DISAGG_CONTROLLER
RUN=$DISAGG_RUN

# Whatever happens, no daemon outlives the test.
cleanup() {
	if [ -s "$RUN/pids" ]; then
		"$DISAGG" down --timeout 10 > /dev/null 2>&1
		while read -r _ pid; do
			kill -KILL "$pid" 2> /dev/null
		done < "$T_TMP/pids.seen"
	fi
	rm -rf "$T_TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
: > "$T_TMP/pids.seen"

# A daemon counts as running unless it is gone or a zombie waiting for
# a parent that does not reap (as in some containers).
running() {
	st=$(sed 's/.*) //' "/proc/$1/stat" 2> /dev/null | cut -c1)
	[ -n "$st" ] && [ "$st" != Z ]
}
none_running() {
	while read -r _ pid; do
		running "$pid" && return 1
	done < "$T_TMP/pids.seen"
	return 0
}
# json FIELD: the string FIELD of the one JSON object on stdin.
json() {
	sed -n "s/.*\"$1\":\"\\([^\"]*\\)\".*/\\1/p"
}

printf '[controller]\nlisten = nowhere\n' > "$T_TMP/bad.ini"
"$DISAGG" up -f "$T_TMP/bad.ini" > "$T_TMP/bad.out" 2>&1
rc=$?
check "up with a bad file exits 1 and names the error" \
    sh -c "[ $rc = 1 ] && grep -q 'bad.ini:2: bad value for .listen.' '$T_TMP/bad.out'"
check "up with a bad file starts nothing" test ! -e "$RUN/pids"

# From the scratch folder: the built-in topology writes into ./out.
(cd "$T_TMP" && exec "$DISAGG" up --timeout 20) > "$T_TMP/up.out" 2>&1
rc=$?
[ -r "$RUN/pids" ] && cp "$RUN/pids" "$T_TMP/pids.seen"
if [ $rc = 0 ]; then
	ok "up starts the built-in topology"
else
	sed 's/^/# /' "$T_TMP/up.out"
	fail "up starts the built-in topology (exit $rc)"
fi
check "up says all three stages registered" \
    grep -q 'The pipeline is up: 3 stages registered' "$T_TMP/up.out"
check "up writes RUN/up.ini with ipc endpoints in RUN" \
    grep -q "^listen *= ipc://$RUN/" "$RUN/up.ini"
check "up writes a pid for each of the four daemons" \
    test "$(wc -l < "$T_TMP/pids.seen")" = 4
check "up names where the output goes" \
    grep -q "output *$T_TMP/out " "$T_TMP/up.out"
check "every daemon logs to RUN/NAME.log" \
    sh -c "for n in controller e0 t0 d0; do grep -q \"\$n.*starting\" \
        '$RUN/'\$n.log || exit 1; done"

# Each daemon is a disaggd by name (pgrep -x, top) and says which it
# is on its command line (ps).
check "pgrep -x disaggd finds the four daemons" sh -c \
    "for p in \$(cut -d' ' -f2 '$T_TMP/pids.seen'); do \
        pgrep -x disaggd | grep -qx \$p || exit 1; done"
while read -r n pid; do
	want="disaggd: $n"
	[ "$n" = controller ] || want="$want $(sed -n "s/^\[\([a-z]*\) $n\]/\1/p" "$RUN/up.ini")"
	check "ps shows '$want' for $n" \
	    sh -c "ps -o args= -p $pid | grep -qx '$want'"
done < "$T_TMP/pids.seen"
check "the controller's log says 'controller starting', once" \
    sh -c "grep -q ': controller starting' '$RUN/controller.log' && \
        ! grep -q 'controller controller' '$RUN/controller.log'"

# The client finds the controller through RUN/up.ini, no -c needed.
"$DISAGG" instances --json > "$T_TMP/inst.json" 2>&1
rc=$?
check "instances --json exits 0" test $rc = 0
for n in e0 t0 d0; do
	check "instances lists $n as up" \
	    grep -q "\"name\":\"$n\",[^}]*\"state\":\"up\"" "$T_TMP/inst.json"
done

# timeout(1): submit --wait has no deadline of its own off a terminal,
# and it outlives a SIGTERM, hence -k.
timeout -k 5 60 "$DISAGG" submit --wait --json --frames 17 --height 256 \
    --width 448 --steps 4 > "$T_TMP/submit.json" 2>&1
rc=$?
check "submit --wait --json exits 0" test $rc = 0
check "the request ends done" \
    test "$(json status < "$T_TMP/submit.json")" = "done"
output=$(json output < "$T_TMP/submit.json")
check "its output file exists, in the scratch folder's out/" \
    sh -c "[ -s '$output' ] && [ '$(dirname "$output")' = '$T_TMP/out' ]"
# The digest is XXH128, as xxhsum -H2 (Debian's xxhash) prints it.
if command -v xxhsum > /dev/null; then
	check "xxhsum -H2 reproduces the result's digest" test \
	    "$(xxhsum -H2 "$output" 2> /dev/null | cut -d' ' -f1)" = "$(json digest < "$T_TMP/submit.json")"
else
	skip "xxhsum -H2 reproduces the result's digest: xxhsum not installed"
fi

"$DISAGG" up > "$T_TMP/again.out" 2>&1
rc=$?
check "a second up is refused while the first runs" \
    sh -c "[ $rc = 1 ] && grep -q 'still running' '$T_TMP/again.out'"
check "the refused up leaves the running pipeline alone" \
    sh -c "cmp -s '$RUN/pids' '$T_TMP/pids.seen' && \
        '$DISAGG' instances > /dev/null"

"$DISAGG" down > "$T_TMP/down.out" 2>&1
rc=$?
if [ $rc = 0 ]; then
	ok "down exits 0"
else
	sed 's/^/# /' "$T_TMP/down.out"
	fail "down exits 0 (exit $rc)"
fi
check "down stops every daemon" wait_for 5 none_running
check "down says each stopped" \
    test "$(grep -c ' stopped (' "$T_TMP/down.out")" = 4
check "down removes RUN/pids" test ! -e "$RUN/pids"
check "the daemons drained and stopped" \
    sh -c "for n in controller e0 t0 d0; do \
        grep -q 'drained; exiting' '$RUN/'\$n.log || exit 1; done"

"$DISAGG" down > "$T_TMP/down2.out" 2>&1
rc=$?
check "down again exits 0 and says there is nothing to stop" \
    sh -c "[ $rc = 0 ] && grep -q 'nothing to stop' '$T_TMP/down2.out'"

# After down, a command fails at once, saying what is missing, instead
# of waiting for a controller that RUN/up.ini still names.
t0=$(date +%s%N)
"$DISAGG" instances > "$T_TMP/stale.out" 2>&1
rc=$?
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
check "after down, instances fails at once (exit 3 in $ms ms)" \
    sh -c "[ $rc = 3 ] && [ $ms -lt 2000 ]"
check "... naming the missing RUN/pids and what to do" \
    sh -c "grep -q 'no pipeline is up' '$T_TMP/stale.out' && \
        grep -q '$RUN/pids' '$T_TMP/stale.out' && \
        grep -q 'disagg up' '$T_TMP/stale.out'"
printf '[controller]\nlisten = ipc://%s/none.sock\n' "$T_TMP" > "$T_TMP/none.ini"
t0=$(date +%s%N)
"$DISAGG" status -f "$T_TMP/none.ini" 1 > "$T_TMP/none.out" 2>&1
rc=$?
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
check "an ipc endpoint with no socket fails at once (exit 3 in $ms ms)" \
    sh -c "[ $rc = 3 ] && [ $ms -lt 2000 ] && \
        grep -q 'no socket $T_TMP/none.sock' '$T_TMP/none.out'"

# A second run in the same folder, its journal gone (as for a topology
# without one): the logs are appended to, and the request ids start
# past the files the first run wrote, which stay as they were.
cp "$output" "$T_TMP/first.y4m"
rm -f "$RUN/controller.journal"
(cd "$T_TMP" && exec "$DISAGG" up --timeout 20) > "$T_TMP/up2.out" 2>&1
rc=$?
[ -r "$RUN/pids" ] && cat "$RUN/pids" >> "$T_TMP/pids.seen"
check "a second up in the same run folder starts" test $rc = 0
timeout -k 5 60 "$DISAGG" submit --wait --json --frames 5 --height 64 \
    --width 64 --steps 2 > "$T_TMP/submit2.json" 2>&1
output2=$(json output < "$T_TMP/submit2.json")
check "its first request writes past the first run's file ($output2)" \
    test "$output2" = "$T_TMP/out/2.y4m"
check "the first run's video is untouched" cmp -s "$output" "$T_TMP/first.y4m"
p50_set() {
	"$DISAGG" instances --json | grep -q '"name":"t0",[^}]*"p50_us":[1-9]'
}
check "instances: t0's p50 over the last minute counts that request" \
    wait_for 10 p50_set
check "the controller says where its ids start" \
    grep -q "request ids start after 1: the highest of the files in" \
    "$RUN/controller.log"
check "each log holds both runs (appended, not truncated)" \
    sh -c "for n in controller e0 t0 d0; do \
        [ \$(grep -c ' starting (pid' '$RUN/'\$n.log) = 2 ] || exit 1; done"
check "log lines are dated in UTC ISO 8601" \
    grep -Eq '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z controller info: ' \
    "$RUN/controller.log"
"$DISAGG" down > "$T_TMP/down3.out" 2>&1
check "down stops the second run" sh -c "[ $? = 0 ] && ! [ -e '$RUN/pids' ]"

# restart NAME: one daemon of a running pipeline, stopped and started
# again as up started it.
(cd "$T_TMP" && exec "$DISAGG" up --timeout 20) > "$T_TMP/up3.out" 2>&1
[ -r "$RUN/pids" ] && cat "$RUN/pids" >> "$T_TMP/pids.seen"
pid_of() { sed -n "s/^$1 //p" "$RUN/pids"; }
old=$(pid_of t0)
"$DISAGG" restart t0 > "$T_TMP/restart.out" 2>&1
rc=$?
cat "$RUN/pids" >> "$T_TMP/pids.seen"
new=$(pid_of t0)
check "restart t0 exits 0 once t0 has registered again" \
    sh -c "[ $rc = 0 ] && grep -q 't0 registered in' '$T_TMP/restart.out'"
replaced() { [ -n "$new" ] && [ "$new" != "$old" ] && ! running "$old"; }
check "... with a new pid in RUN/pids ($old, now $new), the old one gone" \
    wait_for 5 replaced
check "... and the pipeline serves" sh -c "timeout -k 5 60 '$DISAGG' submit \
    --wait --frames 5 --height 64 --width 64 --steps 2 > /dev/null 2>&1"
"$DISAGG" restart controller > "$T_TMP/restart.out" 2>&1
rc=$?
cat "$RUN/pids" >> "$T_TMP/pids.seen"
check "restart controller exits 0 once it answers" \
    sh -c "[ $rc = 0 ] && grep -q 'controller answers in' '$T_TMP/restart.out'"
check "... and the stages register with the new one" wait_for 20 sh -c \
    "[ \$('$DISAGG' instances --json | grep -o '\"state\":\"up\"' | wc -l) = 3 ]"
"$DISAGG" restart t9 > "$T_TMP/restart.out" 2>&1
rc=$?
check "restart t9 (no such daemon) exits 1, naming those up started" \
    sh -c "[ $rc = 1 ] && grep -q \"started no daemon 't9'; it started:.* t0\" \
        '$T_TMP/restart.out'"
"$DISAGG" down > "$T_TMP/down4.out" 2>&1
check "down after restarts stops them all" \
    sh -c "[ $? = 0 ] && [ \$(grep -c ' stopped (' '$T_TMP/down4.out') = 4 ]"

# A topology started by hand, no `disagg up`: down -f FILE stops it
# through its controller, stages first.
H="$T_TMP/hand"
mkdir -p "$H"
cat > "$H/hand.ini" <<INI
[controller]
listen  = ipc://$H/ctl.sock
publish = ipc://$H/pub.sock
heartbeat_ms = 100ms

[fabric]
provider = shm

[encoder e0]
peer = ipc://$H/e0.sock
pool = 16M
slot = 64K

[transformer t0]
peer = ipc://$H/t0.sock
pool = 16M
slot = 64K

[decoder d0]
peer = ipc://$H/d0.sock
pool = 16M
slot = 64K
output_dir = $H/out
INI
# Started last stage first: the registry's order is not the chain's.
for n in controller d0 t0 e0; do
	"$TOP/daemon/disaggd" -d -f "$H/hand.ini" -N $n > "$H/$n.log" 2>&1 &
	echo "$n $!" >> "$T_TMP/pids.seen"
	echo "$n $!" >> "$H/pids"
	[ $n = controller ] && wait_for 10 test -S "$H/ctl.sock"
done
check "the hand-started pipeline registers" wait_for 20 sh -c \
    "[ \$('$DISAGG' instances -f '$H/hand.ini' --json | \
        grep -o '\"state\":\"up\"' | wc -l) = 3 ]"
"$DISAGG" instances -f "$H/hand.ini" > "$H/inst.out" 2>&1
check "instances lists the chain's order (e0 t0 d0), whatever the start order" \
    test "$(awk 'NR > 1 { printf "%s ", $2 }' "$H/inst.out")" = "e0 t0 d0 "
check "instances shows free slots, req/s, p50 and p99" \
    grep -Eq '^ROLE .* FREE +REQ/S +P50MS +P99MS +HB$' "$H/inst.out"
# Draining the only transformer while a request waits for one says so.
"$DISAGG" drain -f "$H/hand.ini" t0 > "$H/drain1.out" 2>&1
check "drain t0 with nothing waiting warns of nothing" \
    sh -c "[ $? = 0 ] && ! grep -q warning '$H/drain1.out'"
"$DISAGG" submit -f "$H/hand.ini" --quiet --frames 5 --height 64 \
    --width 64 --steps 2 > "$H/submit.out" 2>&1
check "submit --quiet prints the request id alone" \
    grep -Eqx '[0-9]+' "$H/submit.out"
"$DISAGG" drain -f "$H/hand.ini" t0 > "$H/drain2.out" 2>&1
check "drain t0 while a request waits for a transformer warns, saying what to do" \
    grep -q "warning: 1 request waits for a transformer, and no other transformer is up: they wait until one is (disagg undrain t0)" "$H/drain2.out"
"$DISAGG" drain -f "$H/hand.ini" --json t0 > "$H/drain3.out" 2>&1
check "drain --json carries the warning" \
    grep -q '^{"name":"t0","ok":true,"warning":"1 request waits' "$H/drain3.out"
"$DISAGG" undrain -f "$H/hand.ini" --json t0 > "$H/undrain.out" 2>&1
check "undrain --json says ok" grep -qx '{"name":"t0","ok":true}' "$H/undrain.out"
DISAGG_RUN="$H/run" "$DISAGG" down -f "$H/hand.ini" > "$H/down.out" 2>&1
rc=$?
sed 's/^/# /' "$H/down.out"
check "down -f FILE exits 0" test $rc = 0
check "... asks each stage started by hand to drain and exit" \
    test "$(grep -c 'started by hand.*asked to drain and exit' "$H/down.out")" = 4
hand_gone() {
	while read -r _ pid; do running "$pid" && return 1; done < "$H/pids"
	return 0
}
check "... and every one of them exits" wait_for 10 hand_gone
check "... having drained" sh -c "for n in controller e0 t0 d0; do \
    grep -q 'drained; exiting' '$H/'\$n.log || exit 1; done"
"$DISAGG" down -f "$T_TMP/bad.ini" > "$T_TMP/down5.out" 2>&1
check "down -f with a bad file exits 1, stopping nothing" \
    sh -c "[ $? = 1 ] && grep -q 'nothing stopped' '$T_TMP/down5.out'"

summary up
