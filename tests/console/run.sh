#!/bin/sh
# run.sh: the console, driven through tmux (send-keys, capture-pane,
# polling with deadlines) against a real pipeline that `disagg up -f`
# starts in a run folder of its own: the overview lists every instance,
# a drain from the console keeps new work off that instance (checked
# with the CLI), a release from the Rooms view frees the room's slots,
# a resize keeps the header and function bar, the console survives a
# controller restart, q and SIGTERM exit cleanly, batch mode prints N
# snapshots, and every key of the action table is in disagg.1.
#
# It runs whatever tui/disagg was built: after `make SANITIZE=address,
# undefined`, `sh tests/harness.sh console` is the sanitizer run (the
# console's stderr must stay empty).
. tests/lib.sh
scratch
TOP=$(pwd)
DISAGG="$TOP/tui/disagg"
DISAGG_RUN="$T_TMP/run"
export DISAGG_RUN
unset DISAGG_CONTROLLER NO_COLOR
RUN=$DISAGG_RUN
T="tmux -L disagg-console-$$ -f /dev/null"

# ---- every key of the action table is in the CONSOLE section ----------
"$DISAGG" console --keys | cut -f1 | tr ' ' '\n' | sort -u > "$T_TMP/keys"
if command -v mandoc > /dev/null; then
	mandoc -T ascii man/disagg.1 | col -b |
	    awk '/^CONSOLE/ { on = 1; next } /^[A-Z][A-Z ]*$/ { on = 0 } on' |
	    tr -s ' \t,' '\n\n\n' | sort -u > "$T_TMP/doc"
	missing=""
	while read -r k; do
		grep -qxF -- "$k" "$T_TMP/doc" || missing="$missing $k"
	done < "$T_TMP/keys"
	check "man disagg.1 CONSOLE lists every key${missing:+ (missing:$missing)}" \
	    test -s "$T_TMP/keys" -a -z "$missing"
else
	skip "console keys in the man page: mandoc not installed"
fi

if ! command -v tmux > /dev/null; then
	skip "console tests: tmux is not installed"
	summary console
	exit 77
fi

# ---- a pipeline: two transformers, slow enough to keep a room alive ---
cleanup() {
	$T kill-server 2> /dev/null
	if [ -s "$RUN/pids" ]; then
		"$DISAGG" down --timeout 10 > /dev/null 2>&1
	fi
	while read -r _ pid; do
		kill -KILL "$pid" 2> /dev/null
	done < "$T_TMP/pids.seen"
	rm -rf "$T_TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
: > "$T_TMP/pids.seen"
mkdir -p "$RUN"
cat > "$T_TMP/topo.ini" <<INI
[controller]
listen  = ipc://$RUN/ctl.sock
publish = ipc://$RUN/pub.sock

[fabric]
provider = shm

[encoder e0]
peer  = ipc://$RUN/e0.sock
stage = ref-encoder
pool  = 64M

[transformer t0]
peer    = ipc://$RUN/t0.sock
stage   = ref-transformer
pool    = 64M
step_ms = 50ms

[transformer t1]
peer    = ipc://$RUN/t1.sock
stage   = ref-transformer
pool    = 64M
step_ms = 50ms

[decoder d0]
peer  = ipc://$RUN/d0.sock
stage = ref-decoder
pool  = 64M
output_dir = $T_TMP/out
INI
"$DISAGG" up -f "$T_TMP/topo.ini" --timeout 30 > "$T_TMP/up.out" 2>&1
rc=$?
[ -r "$RUN/pids" ] && cp "$RUN/pids" "$T_TMP/pids.seen"
if [ $rc != 0 ]; then
	sed 's/^/# /' "$T_TMP/up.out"
	fail "disagg up -f starts the pipeline (exit $rc)"
	summary console
	exit 1
fi

# ---- helpers ------------------------------------------------------------
screen() { $T capture-pane -p -t dgc 2> /dev/null; }
has() { screen | grep -q -- "$1"; }
keys() { $T send-keys -t dgc "$@"; }
# see NAME SECONDS REGEX: one test that the screen shows REGEX in time.
see() {
	if wait_for "$2" has "$3"; then
		ok "$1"
	else
		screen | sed 's/^/# /'
		fail "$1"
	fi
}
# The console in a tmux session "dgc", its pid and exit status in files.
start_console() {
	rm -f "$T_TMP/console.rc"
	cat > "$T_TMP/console.sh" <<SH
echo \$\$ > "$T_TMP/console.pid"
exec "$DISAGG" console -d 3 2>> "$T_TMP/console.err"
SH
	$T new-session -d -s dgc -x 160 -y 45 \
	    "sh '$T_TMP/console.sh'; echo \$? > '$T_TMP/console.rc'"
}
json_ids() { sed -n 's/.*"request":\([0-9]*\).*/\1/p'; }
free_slots() {
	"$DISAGG" instances --json | grep -o '"free_slots":[0-9]*' |
	    cut -d: -f2 | awk '{ s += $1 } END { print s + 0 }'
}

: > "$T_TMP/console.err"
start_console

# ---- overview ---------------------------------------------------------
see "the header shows the console, connected" 10 '^disagg console .*  connected'
for n in e0 t0 t1 d0; do
	see "the overview lists $n as up" 10 " $n  .* up  "
done
see "the function bar is on the last line" 2 'F1Help.*F10Quit'

# ---- resize -------------------------------------------------------------
$T resize-window -t dgc -x 90 -y 16
resized() {
	screen > "$T_TMP/small"
	[ "$(wc -l < "$T_TMP/small")" = 16 ] &&
	    head -1 "$T_TMP/small" | grep -q '^disagg console' &&
	    tail -1 "$T_TMP/small" | grep -q '^F1Help'
}
check "after a resize to 90x16 the header and function bar are there" \
    wait_for 5 resized
$T resize-window -t dgc -x 160 -y 45
see "back to 160x45, the overview still lists t1" 5 " t1  .* up  "

# ---- help overlay -------------------------------------------------------
keys F1
see "F1 opens the help, generated from the action table" 5 'drain the selected instance'
keys x
wait_for 5 sh -c "! $T capture-pane -p -t dgc | grep -q 'any other key closes'"

# ---- drain from the console -------------------------------------------
keys / t r a n s f o r m e r Space t 0 Enter
keys d
see "d asks to confirm the drain of the selected instance" 5 'Drain t0: it gets no new work? \[y/N\]'
keys y
see "the status line says the drain went through" 5 'drain t0: ok'
check "the CLI sees t0 draining or drained" sh -c \
    "'$DISAGG' instances --json | grep -q '\"name\":\"t0\",[^}]*\"state\":\"drain'"
timeout -k 5 60 "$DISAGG" submit --wait --json --count 3 --steps 1 \
    --frames 5 --height 64 --width 64 > "$T_TMP/sub.json" 2> "$T_TMP/sub.err"
rc=$?
check "three requests after the drain end done" sh -c \
    "[ $rc = 0 ] && [ \$(grep -c '\"status\":\"done\"' '$T_TMP/sub.json') = 3 ]"
placed=""
for id in $(json_ids < "$T_TMP/sub.json"); do
	placed="$placed $("$DISAGG" status --json "$id" |
	    sed -n 's/.*"transformer":"\([^"]*\)".*/\1/p')"
done
check "none of them reached the drained t0 (transformers:$placed)" \
    sh -c "[ -n '$placed' ] && ! echo '$placed' | grep -q t0"
keys u
see "u undrains it" 5 'undrain t0: ok'

# ---- events -------------------------------------------------------------
keys 6
see "the Events view shows the drain from PUB" 5 ' drain  *t0 '
keys 1

# ---- submit form --------------------------------------------------------
keys s
see "s opens the submit form" 5 'Submit a request'
keys Enter
see "the form's submit answers with a request id" 10 'submit: ok, request [0-9]'

# ---- release from the Rooms view --------------------------------------
keys 3
wait_for 5 has 'ROOM  *REQUEST'
if wait_for 3 has "does not serve 'rooms'"; then
	skip "release from the Rooms view: the controller does not serve 'rooms' yet"
else
	wait_for 30 sh -c "[ \"\$('$DISAGG' instances --json | grep -c '\"rooms\":0')\" = 5 ]"
	before=$(free_slots)
	id=$("$DISAGG" submit --json --steps 400 --frames 5 --height 64 \
	    --width 64 | json_ids)
	see "the slow request's room shows in the Rooms view" 10 " $id  "
	keys / "$id" Enter r
	see "r asks to confirm the release" 5 'Release room [0-9]*: its request fails'
	keys y
	see "the status line says the release went through" 5 'release room [0-9]*: ok'
	check "the released room's request failed" wait_for 10 sh -c \
	    "'$DISAGG' status --json '$id' | grep -q '\"state\":\"failed\"'"
	slots_back() { [ "$(free_slots)" = "$before" ]; }
	check "its slots are free again ($before)" wait_for 10 slots_back
fi
keys 1

# ---- controller restart -------------------------------------------------
cpid=$(awk '$1 == "controller" { print $2 }' "$RUN/pids")
kill -KILL "$cpid"
see "with the controller gone the console says disconnected" 10 '^disagg console .* disconnected'
keys j k '?'
see "and still answers keys: the help opens" 5 'any other key closes'
keys Escape
setsid "$TOP/daemon/disaggd" -d -f "$RUN/up.ini" -N controller \
    >> "$RUN/controller.log" 2>&1 < /dev/null &
npid=$!
echo "controller $npid" >> "$T_TMP/pids.seen"
sed "s/^controller .*/controller $npid/" "$RUN/pids" > "$RUN/pids.new" &&
    mv "$RUN/pids.new" "$RUN/pids"
see "after a restart the console is connected again" 15 '^disagg console .*  connected'
see "and lists t0 as up again" 15 " t0  .* up  "

# ---- clean exits ------------------------------------------------------
keys q
check "q exits with status 0" wait_for 5 sh -c \
    "[ \"\$(cat '$T_TMP/console.rc' 2> /dev/null)\" = 0 ]"
start_console
see "a second console starts" 10 " t1  .* up  "
kill -TERM "$(cat "$T_TMP/console.pid")"
check "SIGTERM exits with status 0" wait_for 5 sh -c \
    "[ \"\$(cat '$T_TMP/console.rc' 2> /dev/null)\" = 0 ]"
if [ -s "$T_TMP/console.err" ]; then
	sed 's/^/# /' "$T_TMP/console.err" | head -40
	fail "the console wrote nothing on stderr (no sanitizer report)"
else
	ok "the console wrote nothing on stderr (no sanitizer report)"
fi

# ---- batch mode ---------------------------------------------------------
"$DISAGG" console -b -n 3 -d 2 > "$T_TMP/batch" 2> "$T_TMP/batch.err"
rc=$?
check "batch -n 3 exits 0 and prints three overview snapshots" sh -c \
    "[ $rc = 0 ] && [ \$(grep -c '^Overview ' '$T_TMP/batch') = 3 ] && \
    [ \$(grep -c '^\$' '$T_TMP/batch') = 2 ] && \
    [ \$(grep -c ' t1  .* up ' '$T_TMP/batch') = 3 ] && [ ! -s '$T_TMP/batch.err' ]"
"$DISAGG" console -b -v events -p "ipc://$RUN/nowhere.sock" -c \
    "ipc://$RUN/nowhere.sock" -d 2 > "$T_TMP/batch2" 2>&1
rc=$?
check "batch against no controller exits 3 and says disconnected" sh -c \
    "[ $rc = 3 ] && grep -q 'disconnected' '$T_TMP/batch2'"

# With only -c (no topology file to read), the console learns where the
# controller publishes from instances.ok and shows its events.
mkdir -p "$T_TMP/elsewhere"
DISAGG_RUN="$T_TMP/elsewhere" "$DISAGG" console -b -n 60 -d 5 -v events \
    -c "ipc://$RUN/ctl.sock" > "$T_TMP/batch3" 2>&1 &
watcher=$!
# Drain and undrain t1 until the console has shown one of those events
# (it subscribes once the controller has told it where).
poke() {
	"$DISAGG" drain t1 > /dev/null && "$DISAGG" undrain t1 > /dev/null &&
	    grep -q 'undrain *t1 ' "$T_TMP/batch3"
}
check "with only -c the console subscribes to the events the controller names" \
    wait_for 15 poke
kill "$watcher" 2> /dev/null
wait "$watcher"

summary console
