#!/bin/sh
# run.sh: the console, driven through tmux (send-keys, capture-pane,
# polling with deadlines) against a real pipeline that `disagg up -f`
# starts in a run folder of its own: the overview lists every instance,
# with sparklines of req/s and p50 (Unicode blocks in a UTF-8 locale,
# ASCII otherwise), and at 80 columns fits, leaving columns out by
# priority and scrolling them in with Right and Left; a drain from the
# console keeps new work off that instance (checked with the CLI), and
# draining the last instance of a role that is up warns first; the
# events from before the console opened are there, each once; the
# selection stays on its room as rows come and go, and moves to its
# neighbour when it goes; a cancel shows in the header's count; a
# console submit that fails says so; a release from the Rooms view
# frees the room's slots, a resize keeps the header and function bar,
# the console survives a controller restart (and fetches the new
# controller's events), q and SIGTERM exit cleanly, batch mode prints N
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
T="tmux -u -L disagg-console-$$ -f /dev/null"

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
{
	cat <<INI
[controller]
listen  = ipc://$RUN/ctl.sock
publish = ipc://$RUN/pub.sock

[fabric]
provider = shm
INI
	ref_stage encoder e0 "$RUN"
	ref_stage transformer t0 "$RUN" "step_ms = 50ms"
	ref_stage transformer t1 "$RUN" "step_ms = 50ms"
	ref_stage decoder d0 "$RUN" "output_dir = $T_TMP/out"
} > "$T_TMP/topo.ini"
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
# The selected row of the table (its colours: black on cyan), as text.
ESC=$(printf '\033')
selected() {
	$T capture-pane -p -e -t dgc 2> /dev/null | sed -n '4,$p' |
	    grep -F "$ESC[46m" | head -1 | sed "s/$ESC\[[0-9;]*m//g"
}
sel_has() { selected | grep -q -- "$1"; }
# see_sel NAME SECONDS REGEX: the selected row matches REGEX in time.
see_sel() {
	if wait_for "$2" sel_has "$3"; then
		ok "$1"
	else
		screen | sed 's/^/# /'
		echo "# selected: $(selected)"
		fail "$1"
	fi
}
# The console in a tmux session "dgc", its pid and exit status in files;
# in a UTF-8 locale, for the sparklines' block glyphs.
start_console() {
	rm -f "$T_TMP/console.rc"
	# The last console's session ended, and with it the tmux server,
	# which may still be on its way out: a client that reaches it then
	# fails ("server exited unexpectedly").  Start once it is gone.
	$T kill-server > /dev/null 2>&1
	wait_for 5 sh -c "! $T list-sessions > /dev/null 2>&1"
	cat > "$T_TMP/console.sh" <<SH
echo \$\$ > "$T_TMP/console.pid"
LC_ALL=C.UTF-8 exec "$DISAGG" console -d 3 2>> "$T_TMP/console.err"
SH
	$T new-session -d -s dgc -x 180 -y 45 \
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
see "the header shows the console, connected" 10 '^disagg console  connected'
for n in e0 t0 t1 d0; do
	see "the overview lists $n as up" 10 " $n  .* up  "
done
see "the function bar is on the last line" 2 'F1Help.*F10Quit'
see "the header counts cancelled requests" 5 '^disagg console .* failed 0  cancelled 0'
see "the overview has req/s and p50 sparklines" 5 'REQ/S  *REQ/S LAST 3M  *P50MS P50 LAST 3M'
see "each instance's history is drawn in Unicode blocks" 10 \
    ' t0  .* up  .*\(▁\|▂\|▃\|▄\|▅\|▆\|▇\|█\)'

# ---- events from before the console opened -------------------------------
keys 6
for n in e0 t0 t1 d0; do
	see "the Events view has $n's join, from before the console opened" 5 \
	    " join  *$n "
done
# once REGEX [N]: the screen has N (1) lines that match.
once() { [ "$(screen | grep -c -- "$1")" = "${2:-1}" ]; }
joins_once() { once ' join  *e0 ' && once ' join  *t0 ' &&
    once ' join  *t1 ' && once ' join  *d0 '; }
check "each join shows once" wait_for 3 joins_once
keys 1

# ---- 80 columns: the overview fits, the rest a scroll away ---------------
$T resize-window -t dgc -x 80 -y 24
titles() { screen | sed -n 3p; }
fits80() {
	titles | grep -q '^ROLE  *NAME  *STATE  *RUN  *ROOMS  *REQ/S REQ/S LAST 3M  *P50  *HB$' &&
	    screen | grep -q ' t1  .* up  .*[0-9]\(ms\|s\)$' &&
	    screen | sed -n 2p | grep -q 'cols 10> (Right)'
}
check "at 80 columns the overview shows role to heartbeat, 10 columns a scroll away" \
    wait_for 5 fits80
keys Right
see "Right shows the columns in their order, HOST first" 5 '^ROLE  *NAME  *HOST  *STATE '
at_end() {
	titles | grep -q 'BACKLOG$' &&
	    screen | sed -n 2p | grep -q 'cols <[0-9]* (Left)'
}
for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15; do
	at_end && break
	keys Right
	wait_for 2 sh -c "$T capture-pane -p -t dgc | sed -n 2p |
	    grep -q 'cols <$i[ >(]'"
done
pinned_end() { at_end && titles | grep -q '^ROLE  *NAME '; }
check "more of them scroll in to the last one, BACKLOG, ROLE and NAME staying" \
    pinned_end
for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15; do keys Left; done
check "Left scrolls back to the start" wait_for 5 fits80
$T resize-window -t dgc -x 180 -y 45
see "at 180 columns every column is there" 5 '^ROLE  *NAME  *HOST  *STATE  *INCOMING .* HB  *MS/MPX  *BACKLOG$'

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
$T resize-window -t dgc -x 180 -y 45
see "back to 180x45, the overview still lists t1" 5 " t1  .* up  "

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
see "the history of t1, which did the work, rose" 10 \
    ' t1  .* up  .*█'
keys / t r a n s f o r m e r Space t 1 Enter d
see "draining t1, the last transformer up, warns first" 5 \
    'Warning: t1 is the last transformer up: new requests wait. Drain anyway? \[y/N\]'
keys n
see "n leaves it up" 5 'not done'
keys / e 0 Enter d
see "so does draining e0, the only encoder" 5 'Warning: e0 is the last encoder up'
keys n
keys / t r a n s f o r m e r Space t 0 Enter
keys u
see "u undrains it" 5 'undrain t0: ok'

# ---- events -------------------------------------------------------------
keys 6
see "the Events view shows the drain from PUB" 5 ' drain  *t0 '
check "once" wait_for 3 once ' drain  *t0 '
keys 1

# ---- submit form --------------------------------------------------------
keys s
see "s opens the submit form" 5 'Submit a request'
keys Enter
see "the form's submit is followed to its end: done, with its file" 30 \
    'submit: request [0-9]* done: .*\.y4m'
# A submit that fails says so: a slow one, whose room is released.
keys s Tab Tab Tab C-u 4 0 0 Enter
see "a slow submit is accepted and followed" 10 \
    'submit: request [0-9]* accepted, waiting for its end'
id=$(screen | sed -n 's/.*submit: request \([0-9]*\) accepted.*/\1/p')
room_of() {
	"$DISAGG" rooms --json | tr '{' '\n' |
	    sed -n "s/^\"room\":\([0-9]*\),\"request\":$1,.*/\1/p" | head -1
}
wait_for 10 sh -c "[ -n \"\$('$DISAGG' rooms --json | grep '\"request\":$id,')\" ]"
"$DISAGG" release --reason "taken away by the test" "$(room_of "$id")" > /dev/null
see "its failure shows on the status line, with the reason" 10 \
    "submit: request $id failed: .*taken away by the test"

# ---- the selection follows its room ------------------------------------
slow() {
	"$DISAGG" submit --json --steps 400 --frames 5 --height 64 \
	    --width 64 | json_ids
}
keys 3 I
# The row of request $1: ROOM, then REQUEST.
req() { echo "^ *[0-9][0-9]*  *$1 "; }
r1=$(slow)
see "a slow request's room shows in the Rooms view, newest first" 10 "$(req "$r1")"
see_sel "it is selected" 5 "$(req "$r1")"
r2=$(slow)
see "a newer room comes on top" 10 "$(req "$r2")"
see_sel "the selection stays on the first room, not on the top row" 3 "$(req "$r1")"
keys r
see "r asks to release the selected room" 5 'Release room [0-9]*: its request fails'
keys y
gone() { ! has "$(req "$1")"; }
check "the released room goes" wait_for 10 gone "$r1"
see_sel "the selection goes to its neighbour" 5 "$(req "$r2")"
r3=$(slow)
see "another room comes on top" 10 "$(req "$r3")"
see_sel "the selection stays on the neighbour" 3 "$(req "$r2")"
keys c
see "c asks to cancel the selected room's request" 5 "Cancel request $r2? \[y/N\]"
keys y
see "the cancel goes through" 5 "cancel request $r2: ok"
see "the header counts it" 5 '^disagg console .* cancelled 1 '
"$DISAGG" cancel "$r3" > /dev/null
keys I 1

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
	see "with its step of 400 at the transformer" 10 \
	    " $id  .*transformer .* [0-9][0-9]*/400"
	keys / "$id" Enter Enter
	see "Enter follows it: the pane shows its step" 10 \
	    "state .* at transformer step [0-9][0-9]*/400 "
	see "and where the encoder's time went" 10 \
	    "^  encoder  *queue [0-9.]*  in [0-9.]*  compute [0-9.]*  out [0-9.]*  total [0-9.]* ms"
	keys r
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
see "after a restart the console is connected again" 15 '^disagg console  connected'
see "and lists t0 as up again" 15 " t0  .* up  "
# Only the joins: by now the other events (drains, releases, cancels)
# would push the first controller's joins off the screen.
keys 6 '\' join Enter
twice() { once ' join  *e0 ' 2 && once ' join  *t0 ' 2 &&
    once ' join  *t1 ' 2 && once ' join  *d0 ' 2; }
# The old run's joins once showed twice here: a PUB copy that came after
# the kept ones passed for a restart (tests/unit/test_console_events.c).
# The screen goes to the log if it fails.
if wait_for 10 twice; then
	ok "the new controller's joins show after the old ones, each once"
else
	screen | sed 's/^/# /'
	fail "the new controller's joins show after the old ones, each once"
fi
keys '\' C-u Enter 1

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
# Outside a UTF-8 locale the sparklines are ASCII.
LC_ALL=C "$DISAGG" console -b -n 2 -d 2 > "$T_TMP/batch.c" 2>&1
check "in the C locale the sparklines are ASCII" sh -c \
    "grep -q ' t1  .*  *[_.,=+*#-]  *[0-9.]*  *[_.,=+*#-]  ' '$T_TMP/batch.c' && \
    ! grep -q '$(printf '\342\226')' '$T_TMP/batch.c'"
# The kept events, in batch mode: the joins of this controller, once.
"$DISAGG" console -b -v events > "$T_TMP/batch.ev" 2>&1
check "batch -v events prints the events from before it started" sh -c \
    "[ \$(grep -c ' join  *t1 ' '$T_TMP/batch.ev') = 1 ]"
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
